//! A limit of sessions per client address, so that one address cannot take every connection slot
//! (`HERALD_SMTP_MAX_CONNECTIONS`) and hold them until the command timeout. Trusted networks are
//! exempt: an appliance or a load generator there may open as many sessions as the server allows.
//!
//! The table holds an entry only for an address with a session open, so its size is bounded by the
//! connection limit whatever addresses connect.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Sessions open per client address.
#[derive(Debug)]
pub(super) struct PerClient {
    limit: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One session's place in its address's count, given back when dropped.
#[derive(Debug)]
pub(super) struct ClientSlot {
    table: Arc<PerClient>,
    client: IpAddr,
}

impl PerClient {
    pub(super) fn new(limit: u32) -> Arc<PerClient> {
        Arc::new(PerClient {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more session from `client`, or `None` when it has `limit` open already.
    pub(super) fn take(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            table: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_the_limit_and_its_slots_come_back() {
        let table = PerClient::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.take(a).unwrap();
        let _second = table.take(a).unwrap();
        assert!(table.take(a).is_none(), "a third session from the same address");
        let other = table.take(b);
        assert!(other.is_some(), "another address is not affected");
        drop(first);
        assert!(table.take(a).is_some(), "a closed session gives its place back");
        drop(other);
        assert!(
            !table.open.lock().unwrap().contains_key(&b),
            "no entry is kept for an address without sessions"
        );
    }
}
