//! The two text formats of `/metrics`: OpenMetrics 1.0, which prometheus-client encodes, and the
//! Prometheus text format 0.0.4, which every Prometheus and `promtool` read, derived from it.
//!
//! A scraper that asks for `application/openmetrics-text` gets OpenMetrics; anyone else gets 0.0.4.
//! The conversion follows the differences between the formats:
//! - family names: an OpenMetrics counter family `x` has samples `x_total`, and 0.0.4 names the
//!   family by its samples, so its `# TYPE`/`# HELP` say `x_total`; an `info` family `x` (samples
//!   `x_info`, value 1) is a 0.0.4 gauge named `x_info`;
//! - types 0.0.4 lacks: `info` and `stateset` become `gauge`, `gaugehistogram` and `unknown` become
//!   `untyped`;
//! - what 0.0.4 has no syntax for is dropped: `# UNIT`, `# EOF`, exemplars (` # {…} v`), and the
//!   `_created` samples of counters (a series 0.0.4 would have to declare apart);
//! - `# HELP` escapes only `\\` and `\n` in 0.0.4, so an escaped `\"` becomes `"`.

/// Converts OpenMetrics text (as prometheus-client writes it) to the Prometheus text format 0.0.4.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being read: (OpenMetrics name, its OpenMetrics type).
    let mut family: Option<(String, String)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name, text) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            match keyword {
                "TYPE" => {
                    family = Some((name.to_owned(), text.to_owned()));
                    let (name, kind) = prometheus_family(name, text);
                    out.push_str(&format!("# TYPE {name} {kind}\n"));
                }
                "HELP" => {
                    // prometheus-client writes HELP before TYPE: look the type up ahead.
                    let kind = type_of(openmetrics, name);
                    let (name, _) = prometheus_family(name, &kind);
                    out.push_str(&format!("# HELP {name} {}\n", text.replace("\\\"", "\"")));
                }
                _ => {} // UNIT, EOF
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = strip_exemplar(line);
        let is_created = family
            .as_ref()
            .is_some_and(|(name, kind)| kind == "counter" && sample.starts_with(&format!("{name}_created")));
        if !is_created {
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

/// The 0.0.4 name and type of an OpenMetrics family.
fn prometheus_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "info" => (format!("{name}_info"), "gauge"),
        "gauge" | "stateset" => (name.to_owned(), "gauge"),
        "histogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        _ => (name.to_owned(), "untyped"),
    }
}

fn type_of(openmetrics: &str, name: &str) -> String {
    let prefix = format!("# TYPE {name} ");
    openmetrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or("unknown")
        .to_owned()
}

/// A sample line without its exemplar: the value ends at ` # ` outside the label set.
fn strip_exemplar(line: &str) -> &str {
    let after_labels = match line.find('{') {
        Some(open) => closing_brace(line, open).map_or(line.len(), |close| close + 1),
        None => 0,
    };
    match line[after_labels..].find(" # ") {
        Some(at) => &line[..after_labels + at],
        None => line,
    }
}

/// The index of the `}` closing the label set opened at `open`, skipping quoted label values.
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_renamed_and_typed_as_prometheus_text_declares_them() {
        let openmetrics = "\
# HELP herald_build Herald version.
# TYPE herald_build info
herald_build_info{version=\"0.1.0\"} 1
# HELP herald_http_requests HTTP requests answered.
# TYPE herald_http_requests counter
herald_http_requests_total{method=\"GET\",route=\"/livez\",status=\"200\"} 3
herald_http_requests_created{method=\"GET\",route=\"/livez\",status=\"200\"} 1700000000.0
# HELP herald_up Whether \\\"up\\\".
# TYPE herald_up gauge
# UNIT herald_up ratio
herald_up 1
# HELP herald_latency_seconds Latency.
# TYPE herald_latency_seconds histogram
herald_latency_seconds_bucket{le=\"0.5\"} 1 # {trace=\"a # b}\"} 0.3 1700000000.0
herald_latency_seconds_bucket{le=\"+Inf\"} 1
herald_latency_seconds_sum 0.3
herald_latency_seconds_count 1
# EOF
";
        let text = to_prometheus_text(openmetrics);
        assert_eq!(
            text,
            "\
# HELP herald_build_info Herald version.
# TYPE herald_build_info gauge
herald_build_info{version=\"0.1.0\"} 1
# HELP herald_http_requests_total HTTP requests answered.
# TYPE herald_http_requests_total counter
herald_http_requests_total{method=\"GET\",route=\"/livez\",status=\"200\"} 3
# HELP herald_up Whether \"up\".
# TYPE herald_up gauge
herald_up 1
# HELP herald_latency_seconds Latency.
# TYPE herald_latency_seconds histogram
herald_latency_seconds_bucket{le=\"0.5\"} 1
herald_latency_seconds_bucket{le=\"+Inf\"} 1
herald_latency_seconds_sum 0.3
herald_latency_seconds_count 1
"
        );
    }

    #[test]
    fn the_registry_renders_as_text_without_openmetrics_only_syntax() {
        let metrics = crate::metrics::Metrics::new();
        metrics.http_request("GET", "/livez", 200, std::time::Duration::from_millis(3));
        let text = metrics.render(crate::metrics::Exposition::Prometheus).unwrap();
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT") && !text.contains(" info"),
            "{text}"
        );
        assert!(text.contains("# TYPE herald_build_info gauge\n"), "{text}");
        assert!(text.contains("# TYPE herald_http_requests_total counter\n"), "{text}");
        let openmetrics = metrics.render(crate::metrics::Exposition::OpenMetrics).unwrap();
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    }
}
