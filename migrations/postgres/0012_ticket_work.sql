-- The ticket worker's bookkeeping.
--
-- `claimed_by`: the node holding a `sending` event's lease. Any node may claim any key's head (the
-- lease makes one node at a time work on a key); a node that restarts after a crash takes back at
-- once what it held, instead of waiting for its leases to run out.
ALTER TABLE ticket_events ADD COLUMN claimed_by TEXT;
-- What the issue was created as and where people find it, for the ticket list.
ALTER TABLE tickets ADD COLUMN summary TEXT;
ALTER TABLE tickets ADD COLUMN issue_url TEXT;
-- Applied events are kept for a while (the last event of each key, its attempts), then pruned.
CREATE INDEX ticket_events_done ON ticket_events (updated_at) WHERE state = 'done';
