//! What request handlers may reach: the services, behind one `Arc`.
//!
//! axum clones the state for every request, so [`AppState`] is one pointer to [`Services`] rather than a dozen
//! handles cloned one by one; handlers still read `state.store`, `state.metrics`… through `Deref`. This module
//! names services only: the faces (`http`, `console`) import it, `app` builds it, and so no face imports the
//! wiring.

use std::ops::Deref;
use std::sync::Arc;

pub use crate::services::Services;

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
