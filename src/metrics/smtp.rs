//! The SMTP submission server (see `crate::submission`). Every label set is a closed list fixed here,
//! each series present from the start (at 0), so a refusal that never happened shows as 0, not absent.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ReasonLabels;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsModeLabels {
    /// `starttls` or `implicit`.
    pub mode: String,
}

/// Why the submission server refused a client, a command or a message: the `reason` of
/// `herald_smtp_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpRejection {
    AuthRequired,
    AuthFailed,
    Throttled,
    TooLarge,
    TooManyRecipients,
    Syntax,
    BareLineEnding,
    LineTooLong,
    Timeout,
    TooManyErrors,
    TooManyConnections,
    Draining,
    Pregreet,
    Pipelining,
    Storage,
    Invalid,
    /// The memory budget for messages was spent (`452 4.3.1`).
    Memory,
}

impl SmtpRejection {
    pub const ALL: [SmtpRejection; 17] = [
        SmtpRejection::AuthRequired,
        SmtpRejection::AuthFailed,
        SmtpRejection::Throttled,
        SmtpRejection::TooLarge,
        SmtpRejection::TooManyRecipients,
        SmtpRejection::Syntax,
        SmtpRejection::BareLineEnding,
        SmtpRejection::LineTooLong,
        SmtpRejection::Timeout,
        SmtpRejection::TooManyErrors,
        SmtpRejection::TooManyConnections,
        SmtpRejection::Draining,
        SmtpRejection::Pregreet,
        SmtpRejection::Pipelining,
        SmtpRejection::Storage,
        SmtpRejection::Invalid,
        SmtpRejection::Memory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpRejection::AuthRequired => "auth_required",
            SmtpRejection::AuthFailed => "auth_failed",
            SmtpRejection::Throttled => "throttled",
            SmtpRejection::TooLarge => "too_large",
            SmtpRejection::TooManyRecipients => "too_many_recipients",
            SmtpRejection::Syntax => "syntax",
            SmtpRejection::BareLineEnding => "bare_line_ending",
            SmtpRejection::LineTooLong => "line_too_long",
            SmtpRejection::Timeout => "timeout",
            SmtpRejection::TooManyErrors => "too_many_errors",
            SmtpRejection::TooManyConnections => "too_many_connections",
            SmtpRejection::Draining => "draining",
            SmtpRejection::Pregreet => "pregreet",
            SmtpRejection::Pipelining => "pipelining",
            SmtpRejection::Storage => "storage",
            SmtpRejection::Invalid => "invalid",
            SmtpRejection::Memory => "memory",
        }
    }
}

/// How a session got TLS: the `mode` of `herald_smtp_tls_sessions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTlsMode {
    StartTls,
    Implicit,
}

impl SmtpTlsMode {
    fn as_str(self) -> &'static str {
        match self {
            SmtpTlsMode::StartTls => "starttls",
            SmtpTlsMode::Implicit => "implicit",
        }
    }
}

pub struct SmtpMetrics {
    sessions: Counter,
    pub sessions_active: Gauge,
    /// Bytes of the memory budget that sessions' messages hold now (`HERALD_SMTP_DATA_MEMORY`).
    pub data_memory: Gauge,
    auth_failures: Counter,
    tls_sessions: Family<TlsModeLabels, Counter>,
    messages_accepted: Counter,
    bytes_accepted: Counter,
    rejections: Family<ReasonLabels, Counter>,
}

impl SmtpMetrics {
    pub(super) fn register(registry: &mut Registry) -> SmtpMetrics {
        let sessions = Counter::default();
        registry.register(
            "smtp_sessions",
            "SMTP submission sessions opened (connections accepted)",
            sessions.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "smtp_sessions_active",
            "SMTP submission sessions open now",
            sessions_active.clone(),
        );
        let data_memory = Gauge::default();
        registry.register(
            "smtp_data_memory_bytes",
            "Bytes of the SMTP listener's memory budget for messages (HERALD_SMTP_DATA_MEMORY) held by sessions now",
            data_memory.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "smtp_auth_failures",
            "SMTP AUTH attempts refused (wrong credentials, a role that may not submit, throttled, database down)",
            auth_failures.clone(),
        );
        let tls_sessions = Family::<TlsModeLabels, Counter>::default();
        registry.register(
            "smtp_tls_sessions",
            "SMTP submission sessions that completed a TLS handshake, by mode: starttls or implicit (SMTPS)",
            tls_sessions.clone(),
        );
        let messages_accepted = Counter::default();
        registry.register(
            "smtp_messages_accepted",
            "Messages received over SMTP and committed to the queue (answered 250)",
            messages_accepted.clone(),
        );
        let bytes_accepted = Counter::default();
        registry.register(
            "smtp_bytes_accepted",
            "Bytes of the messages received over SMTP and committed to the queue",
            bytes_accepted.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "smtp_rejections",
            "Clients, commands and messages the SMTP submission server refused, by reason",
            rejections.clone(),
        );
        for mode in [SmtpTlsMode::StartTls, SmtpTlsMode::Implicit] {
            tls_sessions.get_or_create(&Self::mode(mode)).inc_by(0);
        }
        for reason in SmtpRejection::ALL {
            rejections.get_or_create(&Self::reason(reason)).inc_by(0);
        }
        SmtpMetrics {
            sessions,
            sessions_active,
            data_memory,
            auth_failures,
            tls_sessions,
            messages_accepted,
            bytes_accepted,
            rejections,
        }
    }

    fn mode(mode: SmtpTlsMode) -> TlsModeLabels {
        TlsModeLabels {
            mode: mode.as_str().to_owned(),
        }
    }

    fn reason(reason: SmtpRejection) -> ReasonLabels {
        ReasonLabels {
            reason: reason.as_str().to_owned(),
        }
    }

    pub fn session_opened(&self) {
        self.sessions.inc();
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn tls_established(&self, mode: SmtpTlsMode) {
        self.tls_sessions.get_or_create(&Self::mode(mode)).inc();
    }

    pub fn message_accepted(&self, bytes: usize) {
        self.messages_accepted.inc();
        self.bytes_accepted.inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub fn rejected(&self, reason: SmtpRejection) {
        self.rejections.get_or_create(&Self::reason(reason)).inc();
    }
}
