-- 0014: cordon-notify learns alert transitions on MQTT; one that the
-- broker acknowledged to cordond and never delivered (a clustered
-- broker's node stopping with it, docs/scaling.md) it takes from cordond's
-- rows in `alerts`, [notify] reconcile_after later (docs/notify.md,
-- "Transitions the broker lost").

-- One row: when cordon-notify first ran on this database (it inserts the
-- row at each connect; the first insert stays). An open alert raised
-- before then was never its to tell and is not taken from here.
CREATE TABLE notify_reconcile (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    since timestamptz NOT NULL DEFAULT now()
);

-- The transitions found missing at a pass (in `alerts`, not received on
-- MQTT), from when: one still missing [notify] reconcile_after later is
-- taken from `alerts`. By PostgreSQL's clock, not the alert's own times
-- (rule times: an update held by [rules] repeat_interval is stored with
-- its trigger's time, a minute before it is published). Not keyed by
-- count: an alert that keeps triggering changes its count every minute.
CREATE TABLE notify_lost (
    alert_id   text NOT NULL,
    transition text NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (alert_id, transition)
);

-- The alerts cordon-notify holds open, for the comparison with `alerts`
-- at each pass (notify_alerts_open leaves out the acknowledged ones).
CREATE INDEX notify_alerts_unresolved ON notify_alerts (alert_id) WHERE state <> 'resolved';

-- The alert message (docs/alerts.md, "The message") of an `alerts` row as
-- it stands, with the transition given and "reconciled": true, as
-- alerts_render() (src/alerts.c) makes it. cordond's human sentence
-- ("text") is made from its register and not kept: absent.
CREATE FUNCTION alert_message(a alerts, p_transition text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'distinct', a.distinct_subjects,
               'sample', to_jsonb(string_to_array(a.sample, ' ')),
               'reason', CASE WHEN a.state = 'resolved' THEN coalesce(a.reason, '') END,
               'by', a.by_whom))
        || jsonb_build_object(
               'alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity,
               'state', a.state, 'transition', p_transition, 'site', a.site,
               'subject', a.subject,
               'raised_at', to_char(a.raised_at AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'updated_at', to_char(a.updated_at AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'resolved_at', to_char(a.resolved_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               -- the device's key: a reused record id's row is <key>~<12 hex>
               'count', a.count,
               'event_id', regexp_replace(a.event_key, '~[0-9a-f]{12}$', ''),
               'gate', a.gate,
               'household', a.household,
               'building', (SELECT h.building FROM households h
                             WHERE h.site = a.site AND h.household = a.household),
               'card', a.card, 'zone', a.zone, 'call_id', a.call_id,
               'temp_c', a.temp_c, 'reconciled', true)
$$;
