//! Log set-up: `HERALD_LOG` filter, `HERALD_LOG_FORMAT` text or JSON, to standard error.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logging section of the settings.
#[derive(Debug, Clone)]
pub struct LoggingSettings {
    /// A filter such as `info` or `herald=debug,info`, validated when the settings were loaded.
    pub filter: String,
    pub format: LogFormat,
}

/// Installs the global log subscriber.
pub fn init(settings: &LoggingSettings) {
    let format = settings.format;
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
