#!/usr/bin/env bash
# Screenshots of every console page at 1280x800 (laptop) and 390x844 (phone), with sample data, for
# review. Needs Debian's chromium and chromium-driver (installed here when missing) and Postfix's
# smtp-sink (package postfix). Output: target/screenshots/*.png, or the directory given as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/screenshots}
mkdir -p "$out"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo -n)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
HERALD_SCREENSHOTS="$(cd "$out" && pwd)" cargo test --test it -- --ignored --exact console_browser::screenshots --nocapture
ls -1 "$out"/*.png
