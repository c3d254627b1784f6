//! What request handlers may reach: the services, behind one `Arc`.
//!
//! axum clones the state for every request, so [`AppState`] is one pointer to [`Services`] rather than a dozen
//! handles cloned one by one; handlers still read `state.store`, `state.metrics`… through `Deref`. This module
//! names services only: the faces (`http`, `console`) import it, `app` builds it, and so no face imports the
//! wiring.

use std::ops::Deref;
use std::sync::Arc;

use crate::alerts::Alerts;
use crate::auth::{Accounts, Authenticator};
use crate::clock::SharedClock;
use crate::cluster::{Cluster, NodeId};
use crate::config::Settings;
use crate::integrations::Integrations;
use crate::mail::{Delivery, MailQueue};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::supervisor::Supervisor;

/// Everything a request handler may need. Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services of one node, opened once at start-up.
pub struct Services {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub authenticator: Authenticator,
    pub accounts: Accounts,
    pub metrics: Arc<Metrics>,
    pub node_id: NodeId,
    pub mail: MailQueue,
    /// The delivery engine (also when the background workers are off, so tools can drive it).
    pub delivery: Delivery,
    pub cluster: Cluster,
    pub integrations: Integrations,
    /// Health alerts mailed through the queue.
    pub alerts: Alerts,
    /// The clock of time-driven rules (alerts); everything else reads the system clock.
    pub clock: SharedClock,
    /// Watches the background loops (metrics, alerts).
    pub supervisor: Supervisor,
}
