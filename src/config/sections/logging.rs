//! Log lines: which, and in what format.

use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::telemetry::{LogFormat, LoggingSettings};

const S: Section = Section::Logging;

keys! {
    LOG: String = Key::new(S, "log", "log filter, e.g. `herald=debug,info`",
        "a log filter such as `info` or `herald=debug,info`",
        |s| tracing_subscriber::EnvFilter::try_new(s).ok().map(|_| s.to_owned()))
        .flag(Flag::Global("FILTER")).default("info");
    LOG_FORMAT: LogFormat = Key::new(S, "log_format", "`text` or `json` (one object per line, on stderr)",
        "`text` or `json`",
        |s| match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        })
        .flag(Flag::Global("FORMAT")).default("text");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<LoggingSettings, ConfigError> {
    Ok(LoggingSettings {
        filter: layers.required(&LOG)?,
        format: layers.required(&LOG_FORMAT)?,
    })
}
