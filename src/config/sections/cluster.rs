//! Cluster mode: the node's name, and how nodes watch each other.

use std::time::Duration;

use crate::cluster::{ClusterSettings, NodeId};
use crate::config::ConfigError;
use crate::config::declare::{Flag, Key, Section, keys};
use crate::config::sources::Layers;
use crate::config::values::{DURATION, parse_bool, parse_duration};

const S: Section = Section::Cluster;

keys! {
    NODE_ID: NodeId = Key::new(S, "node_id",
        "this node's name in the mail queue and the cluster; must differ per node",
        "1 to 64 characters from A-Z a-z 0-9 . _ -", |s| NodeId::try_from(s).ok())
        .flag(Flag::Global("ID")).default_prose("generated once, kept in `<data dir>/node-id`");
    CLUSTER: bool = Key::new(S, "cluster", "turn cluster mode on (PostgreSQL only)", "`true` or `false`", parse_bool)
        .default("false");
    CLUSTER_POLL_INTERVAL: Duration = Key::new(S, "cluster_poll_interval",
        "how often each node publishes its heartbeat and figures", DURATION, parse_duration)
        .default("60s");
    CLUSTER_HEARTBEAT_TIMEOUT: Duration = Key::new(S, "cluster_heartbeat_timeout",
        "a node silent this long is reported OFFLINE", DURATION, parse_duration)
        .default("5m");
    CLUSTER_ADOPT_AFTER: Duration = Key::new(S, "cluster_adopt_after",
        "an OFFLINE node's mail is adopted by a live node after this long", DURATION, parse_duration)
        .default("10m");
    CLUSTER_RETENTION: Duration = Key::new(S, "cluster_retention",
        "OFFLINE nodes (with no mail left) are dropped from the view after this long", DURATION, parse_duration)
        .default("7d");
}

pub(in crate::config) fn read(layers: &Layers) -> Result<ClusterSettings, ConfigError> {
    Ok(ClusterSettings {
        node_id: layers.optional(&NODE_ID)?,
        enabled: layers.required(&CLUSTER)?,
        poll_interval: layers.required(&CLUSTER_POLL_INTERVAL)?,
        heartbeat_timeout: layers.required(&CLUSTER_HEARTBEAT_TIMEOUT)?,
        adopt_after: layers.required(&CLUSTER_ADOPT_AFTER)?,
        retention: layers.required(&CLUSTER_RETENTION)?,
    })
}
