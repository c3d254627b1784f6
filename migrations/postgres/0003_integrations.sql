-- Ticketing integrations and their check history. Timestamps are milliseconds since the Unix epoch.
-- `config` is the integration's JSON without secrets; `secret` is the AES-256-GCM-sealed password or token.
CREATE TABLE integrations (
    name       TEXT   PRIMARY KEY,
    revision   BIGINT NOT NULL,
    config     TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE integration_checks (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_name TEXT   NOT NULL REFERENCES integrations (name) ON DELETE CASCADE,
    status           TEXT   NOT NULL,
    failed_step      TEXT,
    reason           TEXT   NOT NULL,
    checked_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL
);

CREATE INDEX integration_checks_name ON integration_checks (integration_name, id);
