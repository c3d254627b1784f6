-- The durable outgoing mail queue. A message is a row from the moment it is accepted until it is
-- delivered (then deleted) or deleted by an admin. Timestamps are milliseconds since the Unix epoch.
CREATE TABLE mail_messages (
    id              TEXT    PRIMARY KEY,          -- UUIDv7: sorts by acceptance time
    node_id         TEXT    NOT NULL,             -- the node that delivers it
    state           TEXT    NOT NULL,             -- queued | sending | error
    envelope_from   TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,             -- JSON array: to + cc + bcc
    subject         TEXT    NOT NULL,
    content         TEXT    NOT NULL,             -- the accepted submission, as JSON
    size_bytes      BIGINT  NOT NULL,
    submitted_by    TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,                       -- while state = sending
    last_error      TEXT,
    updated_at      BIGINT  NOT NULL
);

CREATE INDEX mail_messages_due ON mail_messages (node_id, state, next_attempt_at);
CREATE INDEX mail_messages_age ON mail_messages (node_id, state, created_at);

-- Idempotency-Key of submissions, kept for a day after acceptance.
CREATE TABLE mail_idempotency (
    principal    TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    message_id   TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX mail_idempotency_created_at ON mail_idempotency (created_at);

-- Live per-node, per-state counts, kept exact by triggers, so that the status endpoint reads two
-- rows instead of counting a million.
CREATE TABLE mail_queue_counts (
    node_id TEXT   NOT NULL,
    state   TEXT   NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (node_id, state)
);

-- Statement-level triggers with transition tables: one counter update per batch, not per row.
CREATE FUNCTION mail_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO mail_queue_counts (node_id, state, n)
            SELECT node_id, state, -COUNT(*) FROM old_rows GROUP BY node_id, state
            ON CONFLICT (node_id, state) DO UPDATE SET n = mail_queue_counts.n + EXCLUDED.n;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO mail_queue_counts (node_id, state, n)
            SELECT node_id, state, COUNT(*) FROM new_rows GROUP BY node_id, state
            ON CONFLICT (node_id, state) DO UPDATE SET n = mail_queue_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mail_count_insert AFTER INSERT ON mail_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_count_apply();
CREATE TRIGGER mail_count_update AFTER UPDATE ON mail_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_count_apply();
CREATE TRIGGER mail_count_delete AFTER DELETE ON mail_messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mail_count_apply();
