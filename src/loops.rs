//! The names of a node's background loops.
//!
//! The supervisor watches them and the metrics give each its series; the supervisor records into the metrics,
//! so the closed set of names sits below both.

/// The background loops of a node: a closed set, so their metrics have a fixed label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackgroundLoop {
    IntegrationSweep,
    MailDelivery,
    ClusterHeartbeat,
    AlertEvaluation,
    TicketDelivery,
}

impl BackgroundLoop {
    pub const ALL: [BackgroundLoop; 5] = [
        BackgroundLoop::IntegrationSweep,
        BackgroundLoop::MailDelivery,
        BackgroundLoop::ClusterHeartbeat,
        BackgroundLoop::AlertEvaluation,
        BackgroundLoop::TicketDelivery,
    ];

    /// The `loop` label and the name in logs and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            BackgroundLoop::IntegrationSweep => "integration_sweep",
            BackgroundLoop::MailDelivery => "mail_delivery",
            BackgroundLoop::ClusterHeartbeat => "cluster_heartbeat",
            BackgroundLoop::AlertEvaluation => "alert_evaluation",
            BackgroundLoop::TicketDelivery => "ticket_delivery",
        }
    }

    /// How a person names it.
    pub fn title(self) -> &'static str {
        match self {
            BackgroundLoop::IntegrationSweep => "integration sweep",
            BackgroundLoop::MailDelivery => "mail delivery",
            BackgroundLoop::ClusterHeartbeat => "cluster heartbeat",
            BackgroundLoop::AlertEvaluation => "alert evaluation",
            BackgroundLoop::TicketDelivery => "ticket delivery",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
