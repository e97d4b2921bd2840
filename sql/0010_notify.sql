-- 0010: alerts reach people (issue 17). cordon-notify keeps everything it
-- received, routed and sent here, so that a restart (SIGKILL included)
-- sends each notification exactly once where the receiver accepted it
-- (docs/notify.md, "Delivery"); cordonctl keeps silences and gate
-- maintenance windows here, and both cordon-notify and cordonctl ask
-- silence_match() whether an alert is silenced, so they cannot disagree.

-- A silence holds the notifications of the alerts it matches between
-- starts_at and ends_at (or until expired by hand). The alerts are raised
-- and stored as always; only their notifications wait. A gate's
-- maintenance window is a silence of kinds {gate_silent, sealed_gate} and
-- subject 'gate:<gate>' (maintenance = true).
CREATE TABLE silences (
    id          bigserial PRIMARY KEY,
    site        text NOT NULL,
    kinds       text[],                   -- NULL: every kind
    subject     text,                     -- glob (* and ?) on the alert's subject; NULL: every one
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    reason      text NOT NULL,
    by_whom     text,
    maintenance boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz,              -- cordonctl silence expire
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_active ON silences (site, ends_at) WHERE expired_at IS NULL;

-- The silence in force for an alert of (site, kind, subject) at `at`: the
-- one that ends last, or NULL.
CREATE FUNCTION silence_match(p_site text, p_kind text, p_subject text, p_at timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM silences
     WHERE site = p_site
       AND expired_at IS NULL
       AND starts_at <= p_at AND p_at < ends_at
       AND (kinds IS NULL OR p_kind = ANY (kinds))
       AND (subject IS NULL OR p_subject LIKE
            replace(replace(replace(replace(replace(subject, '\', '\\'), '%', '\%'),
                                    '_', '\_'), '*', '%'), '?', '_'))
     ORDER BY ends_at DESC, id
     LIMIT 1
$$;

-- Every alert transition cordon-notify received from cordon/+/alert/#,
-- once: a redelivery (same alert, transition and count) is dropped by the
-- key. routed_at is set in the transaction that routes it.
CREATE TABLE notify_inbox (
    seq         bigserial UNIQUE,
    alert_id    text NOT NULL,
    transition  text NOT NULL,
    count       integer NOT NULL,
    site        text NOT NULL,
    kind        text NOT NULL,
    alert       jsonb NOT NULL,           -- the message as published (docs/alerts.md)
    received_at timestamptz NOT NULL DEFAULT now(),
    routed_at   timestamptz,
    PRIMARY KEY (alert_id, transition, count)
);
CREATE INDEX notify_inbox_unrouted ON notify_inbox (seq) WHERE routed_at IS NULL;

-- Where each alert stands on each route that took it: the clock of its
-- reminders and escalation, and the silence holding it.
CREATE TABLE notify_alerts (
    alert_id       text NOT NULL,
    route          text NOT NULL,
    site           text NOT NULL,
    kind           text NOT NULL,
    subject        text NOT NULL,
    severity       text NOT NULL,
    state          text NOT NULL CHECK (state IN ('raised', 'acked', 'resolved')),
    alert          jsonb NOT NULL,        -- its latest message
    first_at       timestamptz NOT NULL,  -- routed (or let go by its silence) at
    told           boolean NOT NULL DEFAULT false, -- its raise was queued to receivers
    level          integer NOT NULL DEFAULT 0,     -- 1 once escalated
    silence_id     bigint,                -- held by this silence while not told
    next_remind_at timestamptz,
    escalate_at    timestamptz,
    reminders      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, route)
);
CREATE INDEX notify_alerts_open ON notify_alerts (site) WHERE state = 'raised';
-- The clocks' two questions, asked every 500 ms: which reminders and
-- escalations are due, and which held raises may go (without these, a
-- scan of every open alert each time).
CREATE INDEX notify_alerts_remind ON notify_alerts (next_remind_at)
    WHERE state = 'raised' AND told;
CREATE INDEX notify_alerts_escalate ON notify_alerts (escalate_at)
    WHERE state = 'raised' AND told;
CREATE INDEX notify_alerts_held ON notify_alerts (silence_id)
    WHERE state = 'raised' AND NOT told AND silence_id IS NOT NULL;

-- One message to one receiver: the alerts of one route and transition that
-- arrived within the route's group_wait. 'pending' until sent; 'sending'
-- while an attempt is under way (the one window where a send can repeat:
-- a crash between the receiver's answer and the commit of 'sent');
-- 'failed' once given up after [notify] give_up_after.
CREATE TABLE notify_messages (
    id              bigserial PRIMARY KEY,
    route           text NOT NULL,
    receiver        text NOT NULL,
    transition      text NOT NULL
                    CHECK (transition IN ('raised', 'updated', 'remind', 'escalate', 'resolved')),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    send_after      timestamptz NOT NULL,  -- the end of group_wait
    next_attempt_at timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_attempt_at timestamptz,
    sent_at         timestamptz,
    http_status     integer,
    answer          text,                  -- the receiver's answer to the last attempt
    body            text                   -- what was sent (last attempt)
);
CREATE INDEX notify_messages_due ON notify_messages (receiver, next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX notify_messages_grouping ON notify_messages (route, receiver, transition)
    WHERE status = 'pending';
-- The last message's send_after of a (route, receiver, transition), asked
-- for each notification queued, whatever the status.
CREATE INDEX notify_messages_last ON notify_messages (route, receiver, transition, send_after);

-- The alerts in each message.
CREATE TABLE notify_items (
    message_id  bigint NOT NULL REFERENCES notify_messages ON DELETE CASCADE,
    alert_id    text NOT NULL,
    transition  text NOT NULL,
    alert       jsonb NOT NULL,           -- the alert as it was when queued
    PRIMARY KEY (message_id, alert_id)
);
CREATE INDEX notify_items_alert ON notify_items (alert_id);

-- Every notification: one alert's transition to one receiver, with the
-- attempts, status and answer of the message that carries it.
CREATE VIEW notifications AS
    SELECT i.alert_id, i.transition, m.receiver, m.route, m.id AS message_id,
           m.attempts, m.status, m.http_status, m.answer, m.created_at, m.sent_at
      FROM notify_items i JOIN notify_messages m ON m.id = i.message_id;
