//! Node identity and cluster membership. Each node owns the mail it accepted; the id names it in
//! the queue and in the cluster view.

mod membership;

use std::fmt;
use std::path::Path;

pub use membership::{Cluster, ClusterSettings, NodeState, NodeStatus, NodeView};

/// A node id: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

#[derive(Debug, thiserror::Error)]
#[error("a node id must be 1 to 64 characters from A-Z a-z 0-9 . _ - (got {0:?})")]
pub struct InvalidNodeId(String);

impl TryFrom<&str> for NodeId {
    type Error = InvalidNodeId;
    fn try_from(s: &str) -> Result<Self, InvalidNodeId> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(InvalidNodeId(s.chars().take(80).collect()))
        }
    }
}

impl NodeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The configured id, or the one stored in `<data_dir>/node-id`, created on first start.
    pub fn load_or_create(configured: Option<&NodeId>, data_dir: &Path) -> Result<NodeId, String> {
        if let Some(id) = configured {
            return Ok(id.clone());
        }
        let path = data_dir.join("node-id");
        match std::fs::read_to_string(&path) {
            Ok(text) => NodeId::try_from(text.trim()).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                let host: String = host
                    .trim()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(40)
                    .collect();
                let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
                let id = if host.is_empty() {
                    format!("node-{suffix}")
                } else {
                    format!("{host}-{suffix}")
                };
                std::fs::write(&path, format!("{id}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(NodeId(id))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_validated() {
        assert!(NodeId::try_from("node_1").is_ok());
        assert!(NodeId::try_from("").is_err());
        assert!(NodeId::try_from("a b").is_err());
        assert!(NodeId::try_from(&*"x".repeat(65)).is_err());
    }

    #[test]
    fn a_generated_id_is_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeId::load_or_create(None, dir.path()).unwrap();
        let second = NodeId::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first, second);
        let configured = NodeId::load_or_create(Some(&NodeId::try_from("node_7").unwrap()), dir.path()).unwrap();
        assert_eq!(configured.as_str(), "node_7");
    }
}
