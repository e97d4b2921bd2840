-- 0001: events, rejects and the spool checkpoint.
-- Every event table has an event_key derived from the message alone (never
-- from the receive time), so a redelivered message maps to the same row.

CREATE TABLE gate_events (
    event_key   text PRIMARY KEY,
    site        text NOT NULL,
    gate        text NOT NULL,
    ts          timestamptz NOT NULL,      -- the device's time
    received_at timestamptz NOT NULL,      -- when cordond received it
    card        text,
    person      text,
    direction   text CHECK (direction IN ('in', 'out')),
    temp_c      numeric(4,1),              -- NULL: not screened
    mask        boolean,
    flags       text[] NOT NULL DEFAULT '{}',
    vendor      text NOT NULL
);
CREATE INDEX gate_events_site_ts ON gate_events (site, ts);
CREATE INDEX gate_events_fever ON gate_events (site, ts) WHERE temp_c >= 37.3;

CREATE TABLE rejects (
    reject_key  text PRIMARY KEY,          -- hash of topic and payload
    received_at timestamptz NOT NULL,
    topic       text NOT NULL,
    reason      text NOT NULL,
    detail      text,
    payload     bytea NOT NULL,            -- at most max_payload bytes
    payload_len integer NOT NULL           -- as received
);
CREATE INDEX rejects_reason ON rejects (reason, received_at);

-- The spool position up to which every record is in the tables above,
-- committed in the same transaction as the rows.
CREATE TABLE spool_checkpoint (
    instance    text PRIMARY KEY,
    spool_id    text NOT NULL,
    position    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
