-- Each delivering node's mail relays and their health: written when a relay goes down or comes back
-- and after each probe, read by `herald mail status`, the console and the health alerts. A node's
-- rows are replaced when its delivery starts and removed when it stops. Times are ms since the epoch.
CREATE TABLE mail_relays (
    node_id       TEXT    NOT NULL,
    relay         TEXT    NOT NULL,            -- the relay's URL without its password
    position      INTEGER NOT NULL,            -- order of preference, 0 first
    up            BOOLEAN NOT NULL,
    since         BIGINT  NOT NULL,            -- up, or down, since
    reason        TEXT,                        -- why it is down
    probes        INTEGER NOT NULL DEFAULT 0,  -- failed probes since it went down
    next_probe_at BIGINT,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (node_id, relay)
);
