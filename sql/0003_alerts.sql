-- 0003: alerts and their transitions (SPEC 4). alert_id is derived from
-- kind, subject and the first triggering event, so a replay after a crash
-- lands on the same rows.

CREATE TABLE alerts (
    alert_id    text PRIMARY KEY,
    site        text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state       text NOT NULL CHECK (state IN ('raised', 'acked', 'resolved')),
    subject     text NOT NULL,
    event_key   text NOT NULL,
    gate        text,
    household   text,
    card        text,
    zone        text,
    call_id     text,
    temp_c      numeric(4,1),
    raised_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    resolved_at timestamptz,
    count       integer NOT NULL,
    reason      text,
    by_whom     text
);
CREATE INDEX alerts_open ON alerts (site, kind) WHERE state <> 'resolved';

CREATE TABLE alert_transitions (
    alert_id    text NOT NULL,
    transition  text NOT NULL CHECK (transition IN ('raised', 'updated', 'acked', 'resolved')),
    count       integer NOT NULL,
    at          timestamptz NOT NULL,
    severity    text NOT NULL,
    by_whom     text,
    reason      text,
    PRIMARY KEY (alert_id, transition, count)
);

-- For rebuilding timer state at start: the last message of each gate.
CREATE INDEX gate_events_site_gate_rx ON gate_events (site, gate, received_at);
