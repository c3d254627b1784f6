-- Tickets: events accepted for an integration (the durable intake) and the map from each problem's
-- dedup key to its Jira issue. Timestamps are milliseconds since the Unix epoch.
--
-- How the delivery worker uses them (the worker itself is built on top of these tables):
-- * An event is a row from the moment it is accepted (HTTP 202 is answered only after its commit)
--   until it has been applied to Jira (`done`) or deleted by an admin. Nothing is held in memory.
-- * Events of one problem, (integration, dedup_key), are applied in `id` order: ids are UUIDv7,
--   assigned by the accepting node's committer in commit order, so on one node id order is acceptance
--   order (across nodes it follows their clocks). The worker takes only a key's *head*: its oldest
--   event that is not `done` (index ticket_events_pending). While the head is `error` the key waits,
--   so a later `resolved` never overtakes the `firing` that an admin has still to fix and resend.
-- * Exactly one node works on a key at a time: a node claims a head by moving it to `sending` with
--   `lease_until` (a conditional UPDATE, as the mail queue claims messages); a lease that runs out
--   (its node died) makes the head claimable again. `node_id` is the accepting node, so that an
--   offline node's queued events can be adopted like its mail.
-- * A failure that retrying can fix sets `next_attempt_at` (backoff, `Retry-After`); one that it
--   cannot parks the event as `error` with Jira's answer in `last_error`.
CREATE TABLE ticket_events (
    id              TEXT    PRIMARY KEY,          -- UUIDv7: orders the events of one key
    integration     TEXT    NOT NULL,             -- the integration's name
    dedup_key       TEXT    NOT NULL,             -- 1..255 printable characters
    status          TEXT    NOT NULL,             -- firing | resolved
    source          TEXT    NOT NULL,             -- alertmanager | api
    context         TEXT    NOT NULL,             -- the template context, JSON (see src/tickets/event.rs)
    state           TEXT    NOT NULL,             -- queued | sending | error | done
    node_id         TEXT    NOT NULL,             -- the node that accepted it (or adopted it)
    submitted_by    TEXT    NOT NULL,             -- the user who posted it
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,             -- due from then, while queued
    lease_until     BIGINT,                       -- while sending: the claim expires then
    last_error      TEXT,                         -- JSON: {"status", "errorMessages": [...], "errors": {...}} or {"message"}
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

-- The head of each key (its oldest event not yet applied) and "is there an earlier event?".
CREATE INDEX ticket_events_pending ON ticket_events (integration, dedup_key, id) WHERE state <> 'done';
-- Due work, oldest first.
CREATE INDEX ticket_events_due ON ticket_events (next_attempt_at, id) WHERE state = 'queued';
-- Lists per integration and state (the API, the console, metrics), and per node (adoption).
CREATE INDEX ticket_events_listing ON ticket_events (integration, state, id);
CREATE INDEX ticket_events_node ON ticket_events (node_id, state);

-- Idempotency-Key of event posts, kept for a day: one post may have become several events.
CREATE TABLE ticket_event_idempotency (
    principal    TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    event_ids    TEXT   NOT NULL,                 -- JSON array of the ids the first post was given
    request_hash TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE INDEX ticket_event_idempotency_created_at ON ticket_event_idempotency (created_at);

-- Herald's own map from a problem to its Jira issue, so that finding an issue never depends on a
-- search. `creating`: a create was sent and its answer not recorded (a timeout): before creating again
-- the worker searches for the dedup label, so that a retried create never makes a second issue.
CREATE TABLE tickets (
    integration       TEXT   NOT NULL,
    dedup_key         TEXT   NOT NULL,
    issue_key         TEXT,                       -- PROJ-123; NULL while creating
    issue_id          TEXT,                       -- Jira's numeric id, stable across project moves
    state             TEXT   NOT NULL,            -- creating | open | resolved
    resolution        TEXT,                       -- the resolution set when resolved (wont-fix blocks reopening)
    resolved_at       BIGINT,
    last_comment_hash TEXT,                       -- never the same comment twice
    last_event_id     TEXT,                       -- the last event applied to the issue
    last_event_at     BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (integration, dedup_key)
);

CREATE INDEX tickets_listing ON tickets (integration, state);
CREATE INDEX tickets_issue ON tickets (integration, issue_key);
