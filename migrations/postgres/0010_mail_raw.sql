-- Complete messages (SMTP submissions and message/rfc822 over HTTP) and where each message came from.
--
-- A message is either a JSON submission (`content`, rendered at delivery) or a complete RFC 5322
-- message (`raw`, relayed byte for byte; `content` is then empty). `recipients` holds, per recipient,
-- a bare address (not yet delivered) or {"address", "state", "reply"} once an attempt has said
-- something about it (see src/mail/recipients.rs).
ALTER TABLE mail_messages ADD COLUMN raw BYTEA;
-- ESMTP parameters kept from the envelope, space-separated: `8BITMIME`, `SMTPUTF8`.
ALTER TABLE mail_messages ADD COLUMN envelope_params TEXT NOT NULL DEFAULT '';
-- `http` or `smtp`.
ALTER TABLE mail_messages ADD COLUMN protocol TEXT NOT NULL DEFAULT 'http';
-- The submitting client's address, when known.
ALTER TABLE mail_messages ADD COLUMN client_addr TEXT;
-- The message's Message-ID header (without angle brackets), when it has one.
ALTER TABLE mail_messages ADD COLUMN message_id TEXT;
