-- Health alerts: per condition, the state last mailed and a change waiting out the debounce.
-- A condition is stored only while it is firing or changing; a quiet, healthy one has no row.
CREATE TABLE alert_state (
    key           TEXT    PRIMARY KEY,
    firing        INTEGER NOT NULL,
    transitions   INTEGER NOT NULL,
    pending_since INTEGER,
    summary       TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL
);
