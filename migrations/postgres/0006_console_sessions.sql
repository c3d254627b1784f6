-- Console sessions. The cookie holds a random id; only its SHA-256 is stored. Timestamps are ms since the epoch.
CREATE TABLE console_sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    flash        TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX console_sessions_user_id ON console_sessions (user_id);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
