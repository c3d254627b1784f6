-- Health alerts: per condition, the state last mailed and a change waiting out the debounce.
-- A condition has a row from its first change on, and keeps it (quiet again after a recovery) until
-- its subject goes away: `transitions` only grows, so every transition mailed has its own number.
CREATE TABLE alert_state (
    key           TEXT    PRIMARY KEY,
    firing        BOOLEAN NOT NULL,  -- the state last mailed
    transitions   BIGINT  NOT NULL,  -- transitions mailed so far
    since         BIGINT  NOT NULL,  -- when the state last mailed began to hold
    pending_since BIGINT,            -- when the opposite state was first seen, while it waits out the debounce
    summary       TEXT    NOT NULL,
    updated_at    BIGINT  NOT NULL
);
