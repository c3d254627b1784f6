-- Health alerts: per condition, the state last mailed and a change waiting out the debounce.
-- A condition is stored only while it is firing or changing; a quiet, healthy one has no row.
CREATE TABLE alert_state (
    key           TEXT    PRIMARY KEY,
    firing        BOOLEAN NOT NULL,
    transitions   BIGINT NOT NULL,
    pending_since BIGINT,
    summary       TEXT    NOT NULL,
    updated_at    BIGINT NOT NULL
);
