-- 0009: what the retention run ([site] retention_days, src/retention.c)
-- finds old rows by. Most event tables have no index that starts with ts,
-- so an hourly run with nothing to remove scanned each table whole (0.56 s
-- a million gate events here). A BRIN index on ts is a few pages, costs
-- next to nothing on insert (no difference measurable here in 500,000-row
-- inserts, fsync on) and, since rows arrive roughly in ts order, finds the
-- old ones by block range: that run took 0.027 s with it. autosummarize
-- summarizes new ranges as autovacuum passes.
CREATE INDEX gate_events_ts_brin      ON gate_events      USING brin (ts) WITH (autosummarize = on);
CREATE INDEX gate_status_ts_brin      ON gate_status      USING brin (ts) WITH (autosummarize = on);
CREATE INDEX disinfections_ts_brin    ON disinfections    USING brin (ts) WITH (autosummarize = on);
CREATE INDEX hotline_events_ts_brin   ON hotline_events   USING brin (ts) WITH (autosummarize = on);
CREATE INDEX isolation_checks_ts_brin ON isolation_checks USING brin (ts) WITH (autosummarize = on);
CREATE INDEX acks_ts_brin             ON acks             USING brin (ts) WITH (autosummarize = on);
CREATE INDEX need_events_ts_brin      ON need_events      USING brin (ts) WITH (autosummarize = on);
CREATE INDEX welfare_calls_ts_brin    ON welfare_calls    USING brin (ts) WITH (autosummarize = on);
CREATE INDEX dropoffs_ts_brin         ON dropoffs         USING brin (ts) WITH (autosummarize = on);
-- These two have no device time: the run goes by received_at.
CREATE INDEX rejects_received_brin    ON rejects          USING brin (received_at) WITH (autosummarize = on);
CREATE INDEX event_keys_reused_received_brin
    ON event_keys_reused USING brin (received_at) WITH (autosummarize = on);
