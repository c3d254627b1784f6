-- Facts about the installation as a whole, e.g. a value sealed with the secrets key, so that a node
-- started with a different key is stopped before it writes secrets no other node can read.
CREATE TABLE herald_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
