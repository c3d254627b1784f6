-- Cluster membership: each node's heartbeat, state and last published mail queue figures.
-- Timestamps are milliseconds since the Unix epoch.
CREATE TABLE cluster_nodes (
    node_id         TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL,            -- ACTIVATING | ACTIVE | PASSIVATING | PASSIVE | OFFLINE
    started_at      BIGINT  NOT NULL,
    heartbeat_at    BIGINT  NOT NULL,
    state_since     BIGINT  NOT NULL,
    queue_size      BIGINT  NOT NULL DEFAULT 0,
    error_size      BIGINT  NOT NULL DEFAULT 0,
    drain_requested BOOLEAN NOT NULL DEFAULT FALSE,
    adopted_by      TEXT,                        -- the live node that took over this node's mail
    adopted_at      BIGINT
);
