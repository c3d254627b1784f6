// Herald console: a little progressive enhancement. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Destructive forms ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // A form cannot be sent twice by a double click.
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      for (const button of form.querySelectorAll("button[type=submit]")) {
        setTimeout(() => { button.disabled = true; }, 0);
      }
    });
  }
  // Coming back to the page (back button) must not find its buttons still disabled.
  window.addEventListener("pageshow", () => {
    for (const button of document.querySelectorAll("form[method=post] button[type=submit]")) button.disabled = false;
  });
  // The integration form shows the user field only for Basic authentication.
  const basicOnly = document.querySelector("[data-auth=basic]");
  if (basicOnly) {
    const sync = () => {
      const chosen = document.querySelector("input[name=auth_type]:checked");
      basicOnly.hidden = chosen !== null && chosen.value !== "basic";
    };
    for (const radio of document.querySelectorAll("input[name=auth_type]")) radio.addEventListener("change", sync);
    sync();
  }
});
