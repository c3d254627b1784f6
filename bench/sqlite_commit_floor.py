#!/usr/bin/env python3
"""What one SQLite group commit of the mail queue costs on this machine, without Herald around it.

Creates a database from Herald's own SQLite migrations (WAL, as Herald opens it) in a temporary
directory on the disk of DATA_DIR (default: the system's temporary directory), then commits 2,000
batches of 1, 4 and 10 rows shaped like an SMTP submission (a 1,250-byte message, time-ordered ids)
at synchronous FULL (Herald's setting), NORMAL and OFF, and prints the time per commit and per row.

FULL minus NORMAL is the WAL's fsync; NORMAL minus OFF the page writes. Herald's own commit
(herald_mail_commit_duration_seconds) cannot be much faster than the FULL line for its batch size:
Python's sqlite3 module adds only a few µs per row of its own (2.5 µs for a statement with 14 bound
values, a 1,250-byte blob among them, measured the same way).

    python3 bench/sqlite_commit_floor.py
    DATA_DIR=/var/lib/herald python3 bench/sqlite_commit_floor.py
"""
import glob
import os
import sqlite3
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMMITS = 2000

with tempfile.TemporaryDirectory(dir=os.environ.get("DATA_DIR")) as folder:
    db = sqlite3.connect(os.path.join(folder, "herald.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for migration in sorted(glob.glob(os.path.join(HERE, "..", "migrations", "sqlite", "*.sql"))):
        with open(migration) as f:
            db.executescript(f.read())
    message = os.urandom(625).hex().encode()
    sequence = 0

    def commit(rows):
        global sequence
        db.execute("BEGIN")
        for _ in range(rows):
            sequence += 1
            now = int(time.time() * 1000)
            db.execute(
                "INSERT INTO mail_messages (id, node_id, state, envelope_from, recipients, subject, content, "
                "size_bytes, submitted_by, attempts, created_at, next_attempt_at, updated_at, raw, "
                "envelope_params, protocol, client_addr, message_id) "
                "VALUES (?, 'node-a', 'queued', 'a@example.com', '[\"b@example.com\"]', '', '', ?, "
                "'trusted-network', 0, ?, ?, ?, ?, '', 'smtp', '127.0.0.1', ?)",
                ("019ad000-%04x-7000-8000-%012d" % (sequence >> 48, sequence), len(message), now, now, now,
                 message, "%d@bench" % sequence),
            )
        db.execute("COMMIT")

    print("SQLite %s, %d commits each, data on %s" % (sqlite3.sqlite_version, COMMITS, folder))
    for synchronous in ("FULL", "NORMAL", "OFF"):
        db.execute("PRAGMA synchronous = " + synchronous)
        for rows in (1, 4, 10):
            started = time.perf_counter()
            for _ in range(COMMITS):
                commit(rows)
            per_commit = (time.perf_counter() - started) / COMMITS * 1e6
            print("  synchronous=%-6s %2d rows per commit: %4.0f µs per commit, %4.0f µs per row"
                  % (synchronous, rows, per_commit, per_commit / rows))
