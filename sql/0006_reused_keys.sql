-- 0006: record ids that a device reused (issue 14, point 7). A terminal
-- reset to serial 1, a firmware update, a replaced terminal given the old
-- gate id: the same event key comes again with other content. The first
-- reading keeps the key; each other content is stored under
-- "<key>~<first 12 hex digits of its content hash>" (the same for every
-- delivery of it, so a redelivery still adds nothing). Rows stored before
-- this migration have no hash and count as the same content.

-- XXH3-128 of what the event says (src/tables.c, tables_content_hash()).
ALTER TABLE gate_events      ADD COLUMN content_hash bytea;
ALTER TABLE gate_status      ADD COLUMN content_hash bytea;
ALTER TABLE disinfections    ADD COLUMN content_hash bytea;
ALTER TABLE hotline_events   ADD COLUMN content_hash bytea;
ALTER TABLE isolation_checks ADD COLUMN content_hash bytea;
ALTER TABLE acks             ADD COLUMN content_hash bytea;

-- Every reading stored under a derived key: which key its device reused,
-- in which table, when it came.
CREATE TABLE event_keys_reused (
    event_key    text NOT NULL,            -- as the device sent it
    content_hash bytea NOT NULL,
    derived_key  text NOT NULL,            -- the row's event_key
    event_table  text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (event_key, content_hash)
);

-- The content hash of the event that raised an alert (NULL: a timer, or
-- raised before this migration); with it an alert names the row of its
-- own reading when that reading's key was reused.
ALTER TABLE alerts ADD COLUMN event_hash bytea;
CREATE INDEX alerts_event_key ON alerts (event_key);
