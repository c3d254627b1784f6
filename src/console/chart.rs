//! The integration history chart: one bar per check, oldest on the left, height by duration, colour by
//! verdict. Inline SVG, so it needs no script and no image request; each bar has a tooltip.

use std::fmt::Write;

use crate::store::CheckRecord;
use crate::timefmt::rfc3339_ms;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const TOP: f64 = 4.0;
const BOTTOM: f64 = 1.0;

/// Escapes text for SVG content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The longest duration among `checks`, which the tallest bar stands for.
pub fn slowest_ms(checks: &[CheckRecord]) -> i64 {
    checks.iter().map(|c| c.duration_ms).max().unwrap_or(0).max(1)
}

/// The chart of `checks` (newest first, as the store returns them). Empty when there is none.
pub fn history_svg(checks: &[CheckRecord]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let faulty = checks.iter().filter(|c| c.status != "HEALTHY_INTEGRATION").count();
    let slowest = slowest_ms(checks);
    let slot = WIDTH / checks.len().max(20) as f64;
    let bar = (slot * 0.7).max(1.0);
    let plot = HEIGHT - TOP - BOTTOM;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" aria-describedby="chart-desc" preserveAspectRatio="none"><title id="chart-title">Check history</title><desc id="chart-desc">The last {n} checks, oldest first: {healthy} healthy, {faulty} faulty; bar height is the check's duration (longest {slowest} ms).</desc>"#,
        n = checks.len(),
        healthy = checks.len() - faulty,
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{y}" x2="{WIDTH}" y2="{y}"/>"#,
        y = HEIGHT - BOTTOM,
    );
    // Fewer checks than slots: the bars sit on the right, so the newest is always at the right edge.
    let offset = (checks.len().max(20) - checks.len()) as f64 * slot;
    for (i, check) in checks.iter().rev().enumerate() {
        let healthy = check.status == "HEALTHY_INTEGRATION";
        let h = (check.duration_ms.max(0) as f64 / slowest as f64 * plot).max(3.0);
        let x = offset + i as f64 * slot + (slot - bar) / 2.0;
        let y = HEIGHT - BOTTOM - h;
        let tip = format!(
            "{} · {} · {} ms{}",
            rfc3339_ms(check.checked_at),
            if healthy { "healthy" } else { "FAULTY" },
            check.duration_ms,
            if healthy {
                String::new()
            } else {
                format!(" · {}", check.reason)
            }
        );
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"><title>{tip}</title></rect>"#,
            class = if healthy { "ok" } else { "bad" },
            tip = escape(&tip),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: &str, at: i64, ms: i64, reason: &str) -> CheckRecord {
        CheckRecord {
            integration_name: "jira".into(),
            status: status.into(),
            failed_step: None,
            reason: reason.into(),
            checked_at: at,
            duration_ms: ms,
            report: None,
        }
    }

    #[test]
    fn one_bar_per_check_oldest_first_with_escaped_tooltips() {
        let checks = vec![
            check("FAULTY_CONFIGURATION", 3_000, 40, "user <svc> & \"friends\""),
            check("HEALTHY_INTEGRATION", 2_000, 20, "ok"),
            check("HEALTHY_INTEGRATION", 1_000, 10, "ok"),
        ];
        let svg = history_svg(&checks);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("2 healthy, 1 faulty"));
        // Oldest first: the faulty (newest) bar is the last one.
        let last = svg.rfind("<rect").unwrap();
        assert!(svg[last..].starts_with(r#"<rect class="bad""#));
        assert!(svg.contains("user &lt;svc&gt; &amp; &quot;friends&quot;"));
        assert!(!svg.contains("<svc>"));
        assert_eq!(history_svg(&[]), "");
    }
}
