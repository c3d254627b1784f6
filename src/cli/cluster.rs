//! `herald cluster …`: the nodes of a cluster, and draining or activating one.

use clap::Subcommand;

use crate::services::Services;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Every node with its state, heartbeat age and mail queue figures.
    Status,
    /// Ask a node to drain: it delivers what it holds, takes no new mail, and reports
    /// PASSIVATING, then PASSIVE (within one poll interval).
    Drain { node: String },
    /// Undo a drain: the node takes work again.
    Activate { node: String },
}
pub async fn run(cmd: ClusterCommand, services: &Services) -> anyhow::Result<()> {
    let cluster = &services.cluster;
    match cmd {
        ClusterCommand::Status => {
            let now = crate::store::now_ms();
            let nodes = cluster.status().await?;
            if nodes.is_empty() {
                println!("no cluster nodes (a single node on SQLite, or HERALD_CLUSTER is off)");
            } else {
                println!(
                    "{:<24} {:<12} {:>14} {:>8} {:>10} {:<6}",
                    "NODE", "STATE", "HEARTBEAT AGO", "SIZE", "ERRORSIZE", "DRAIN"
                );
            }
            for status in nodes {
                let drain = if status.drain_requested { "yes" } else { "no" };
                let node = status.node;
                let age = (now - node.heartbeat_at).max(0);
                println!(
                    "{:<24} {:<12} {:>13}s {:>8} {:>10} {:<6}{}",
                    node.node_id,
                    node.state.as_str(),
                    age / 1000,
                    node.queue_size,
                    node.error_size,
                    drain,
                    if node.stopped { " (stopped cleanly)" } else { "" }
                );
            }
        }
        ClusterCommand::Drain { node } => {
            anyhow::ensure!(cluster.set_drain(&node, true).await?, "no cluster node `{node}`");
            println!("node `{node}` will drain at its next heartbeat");
        }
        ClusterCommand::Activate { node } => {
            anyhow::ensure!(cluster.set_drain(&node, false).await?, "no cluster node `{node}`");
            println!("node `{node}` will take work again at its next heartbeat");
        }
    }
    Ok(())
}
