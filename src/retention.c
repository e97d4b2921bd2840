/* retention.c - the retention thread: removes event rows older than
 * [site] retention_days (SPEC 5), hourly, in bounded batches.
 *
 * Why a thread of its own with its own connection, not the store's or the
 * register's: the store thread's one job is to get the spool into
 * PostgreSQL (SPEC G1, the ingest targets of §9); a delete run there,
 * however short its batches, would sit between two batches of ingest. The
 * register thread is idle most of the time, but what it does must happen
 * at once: a NOTIFY (a gate sealed, a card revoked) waiting behind a
 * first run that removes a backlog of millions of rows would leave the
 * rules on the old register for that long. Alone, the thread waits on
 * nobody and nobody waits on it: each batch is one DELETE of at most
 * RETENTION_BATCH rows in its own transaction (row locks held for
 * milliseconds, on old rows that ingest does not write), with a
 * lock_timeout so that it gives way rather than queue behind anyone.
 * The cost is one more connection and one idle thread.
 *
 * Events go by their device time `ts`, never by received_at: a message
 * redelivered after a crash has a new receive time (SPEC 5), and the
 * daily report counts by `ts`, so removing by `ts` removes whole report
 * days and treats every delivery of a message alike (docs/config.md,
 * "Retention"). Tables without a device time go by what they have:
 * rejects and event_keys_reused by received_at, resolved alerts by
 * resolved_at, resolved calls by resolved_at, finished needs by the time
 * they were delivered or cancelled. */
#include "retention.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "clocks.h"
#include "db.h"
#include "log.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* Until the store has migrated the schema, look again this often. */
#define SCHEMA_WAIT_MS 1000
/* Between two batches: room for the store's transactions on a busy disk. */
#define BATCH_PAUSE_MS 10

static const char *const table_names[RETENTION_TABLES] = {
	"gate_events",	  "gate_status",       "disinfections",
	"hotline_events", "hotline_calls",     "isolation_checks",
	"acks",		  "need_events",       "needs",
	"welfare_calls",  "dropoffs",	       "rejects",
	"alerts",	  "alert_transitions", "event_keys_reused",
	"notify_inbox",	  "notify_messages",   "notify_alerts",
	"silences",
};

/* Rows of `t` matching `cond`, at most $2 of them, removed; the count. $1
 * is the cutoff (timestamptz). The ctids are read first so that the
 * DELETE is a TID scan of exactly the batch. */
#define DELETE_WHERE(t, cond)                                                      \
	"WITH d AS (DELETE FROM " t " WHERE ctid = ANY (ARRAY(SELECT ctid FROM " t \
	" e WHERE " cond " LIMIT $2::int)) RETURNING 1) SELECT count(*) FROM d"
#define OLD_TS "e.ts < $1::timestamptz"

/* One statement of a run: it removes from table_names[table] (and, for
 * alerts, from alert_transitions: the second column). */
static const struct {
	int table;
	const char *sql;
} steps[] = {
	{ 0, DELETE_WHERE("gate_events", OLD_TS) },
	{ 1, DELETE_WHERE("gate_status", OLD_TS) },
	{ 2, DELETE_WHERE("disinfections", OLD_TS) },
	/* The steps of a call still open stay with it. */
	{ 3,
	  DELETE_WHERE("hotline_events",
		       OLD_TS " AND NOT EXISTS (SELECT 1 FROM hotline_calls c"
			      " WHERE c.site = e.site AND c.call_id = e.call_id"
			      " AND c.status <> 'resolved')") },
	{ 4,
	  DELETE_WHERE("hotline_calls",
		       "e.status = 'resolved' AND e.resolved_at < $1::timestamptz") },
	{ 5, DELETE_WHERE("isolation_checks", OLD_TS) },
	{ 6, DELETE_WHERE("acks", OLD_TS) },
	/* The steps of a need still open (or assigned) stay with it. */
	{ 7,
	  DELETE_WHERE("need_events",
		       OLD_TS " AND NOT EXISTS (SELECT 1 FROM needs n"
			      " WHERE n.site = e.site AND n.need_id = e.need_id"
			      " AND n.status IN ('open', 'assigned'))") },
	{ 8,
	  DELETE_WHERE("needs",
		       "e.status IN ('delivered', 'cancelled')"
		       " AND greatest(e.delivered_at, e.cancelled_at) < $1::timestamptz") },
	{ 9, DELETE_WHERE("welfare_calls", OLD_TS) },
	{ 10, DELETE_WHERE("dropoffs", OLD_TS) },
	{ 11, DELETE_WHERE("rejects", "e.received_at < $1::timestamptz") },
	/* A resolved alert and its transitions in one statement. */
	{ 12,
	  "WITH a AS (DELETE FROM alerts WHERE ctid = ANY (ARRAY(SELECT ctid FROM alerts"
	  " WHERE state = 'resolved' AND resolved_at < $1::timestamptz LIMIT $2::int))"
	  " RETURNING alert_id),"
	  " t AS (DELETE FROM alert_transitions WHERE alert_id IN (SELECT alert_id FROM a)"
	  " RETURNING 1)"
	  " SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM t)" },
	{ 14, DELETE_WHERE("event_keys_reused", "e.received_at < $1::timestamptz") },
	/* cordon-notify's (docs/notify.md): what was routed, sent or given up,
	 * alerts no longer waiting for an ack, silences over; a message's items
	 * go with it (ON DELETE CASCADE). */
	{ 15, DELETE_WHERE("notify_inbox", "e.routed_at < $1::timestamptz") },
	{ 16,
	  DELETE_WHERE("notify_messages",
		       "e.status IN ('sent', 'failed') AND e.created_at < $1::timestamptz") },
	{ 17,
	  DELETE_WHERE("notify_alerts", "e.state <> 'raised' AND e.first_at < $1::timestamptz") },
	{ 18,
	  DELETE_WHERE("silences",
		       "least(e.ends_at, coalesce(e.expired_at, e.ends_at)) < $1::timestamptz") },
};

struct retention {
	char *conninfo;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	int quit, run_now;   /* under lock */
	_Atomic int64_t days;
	PGconn *conn;
	_Atomic uint64_t removed[RETENTION_TABLES];
	_Atomic uint64_t runs, failures;
};

const char *
retention_table(int i)
{
	return i >= 0 && i < RETENTION_TABLES ? table_names[i] : "";
}

uint64_t
retention_removed(const struct retention *r, int i)
{
	return i >= 0 && i < RETENTION_TABLES ? atomic_load(&r->removed[i]) : 0;
}

uint64_t
retention_runs(const struct retention *r)
{
	return atomic_load(&r->runs);
}

uint64_t
retention_failures(const struct retention *r)
{
	return atomic_load(&r->failures);
}

/* Waits until `deadline_ms` (CLOCK_MONOTONIC), a quit or a run asked for;
 * returns 1 to stop, else 0 (and clears run_now). */
static int
wait_until(struct retention *r, int64_t deadline_ms)
{
	int stop;

	pthread_mutex_lock(&r->lock);
	while (!r->quit && !r->run_now && clocks_mono_ms() < deadline_ms) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1; /* a second at most: the deadline is checked again */
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	stop = r->quit;
	r->run_now = 0;
	pthread_mutex_unlock(&r->lock);
	return stop;
}

static int
quitting(struct retention *r)
{
	int q;

	pthread_mutex_lock(&r->lock);
	q = r->quit;
	pthread_mutex_unlock(&r->lock);
	return q;
}

/* Connects and sets the session's limits; 0 or -1 with the reason. */
static int
connect_db(struct retention *r, char *err, size_t errlen)
{
	r->conn = db_connect(r->conninfo, "cordond-retention");
	if (!r->conn) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (PQstatus(r->conn) != CONNECTION_OK) {
		db_error_text(r->conn, NULL, err, errlen);
		goto fail;
	}
	/* A batch that waits for a lock gives way (the next run tries again).
	 * The statement timeout is generous: the last batch of a table may
	 * scan it (0.5 s a million rows here; the BRIN indexes of migration
	 * 0009 spare that when nothing is old) before it deletes, and that
	 * scan holds no lock anyone waits for. */
	if (db_exec(r->conn,
		    "SET lock_timeout = '5s'; SET statement_timeout = '10min';"
		    " SET idle_in_transaction_session_timeout = '60s'",
		    err, errlen) < 0)
		goto fail;
	return 0;
fail:
	PQfinish(r->conn);
	r->conn = NULL;
	return -1;
}

/* One run: every step in batches until a batch comes back short. Returns
 * 0, 1 when the schema is not there yet, or -1 with the reason (the
 * counts of what was removed before are kept and logged). */
static int
run(struct retention *r, int64_t days, uint64_t counts[RETENTION_TABLES], char *cutoff,
    size_t cutoff_len, char *err, size_t errlen)
{
	char days_s[24], batch_s[16];
	const char *params[2] = { days_s, batch_s };
	PGresult *res;
	int version;

	version = db_schema_version(r->conn, err, errlen, NULL);
	if (version < 0)
		return -1;
	if (version < db_latest_version())
		return 1;
	snprintf(days_s, sizeof(days_s), "%" PRId64, days);
	res = PQexecParams(
		r->conn,
		"SELECT to_char((now() - make_interval(days => $1::int)) AT TIME ZONE 'UTC',"
		"               'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_text(r->conn, res, err, errlen);
		PQclear(res);
		return -1;
	}
	snprintf(cutoff, cutoff_len, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	params[0] = cutoff;
	snprintf(batch_s, sizeof(batch_s), "%d", RETENTION_BATCH);
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		uint64_t n;

		do {
			if (quitting(r)) {
				snprintf(err, errlen, "stopped");
				return -1;
			}
			res = PQexecParams(r->conn, steps[s].sql, 2, NULL, params, NULL, NULL, 0);
			if (PQresultStatus(res) != PGRES_TUPLES_OK) {
				char why[512];

				db_error_text(r->conn, res, why, sizeof(why));
				snprintf(err, errlen, "%s: %s", table_names[steps[s].table], why);
				PQclear(res);
				return -1;
			}
			n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
			counts[steps[s].table] += n;
			atomic_fetch_add(&r->removed[steps[s].table], n);
			if (PQnfields(res) > 1) {
				uint64_t m = strtoull(PQgetvalue(res, 0, 1), NULL, 10);

				counts[steps[s].table + 1] += m;
				atomic_fetch_add(&r->removed[steps[s].table + 1], m);
			}
			PQclear(res);
			if (n == RETENTION_BATCH) {
				struct timespec pause = { 0, BATCH_PAUSE_MS * 1000000L };

				nanosleep(&pause, NULL);
			}
		} while (n == RETENTION_BATCH);
	}
	return 0;
}

/* The log line of a run: "removed N rows ...: gate_events 3, ...". */
static void
log_run(const char *cutoff, int64_t days, const uint64_t counts[RETENTION_TABLES], int64_t took_ms,
	const char *failed)
{
	char list[1024];
	size_t at = 0;
	uint64_t total = 0;

	list[0] = '\0';
	for (int i = 0; i < RETENTION_TABLES; i++) {
		int w = snprintf(list + at, sizeof(list) - at, "%s%s %" PRIu64, i ? ", " : "",
				 table_names[i], counts[i]);

		if (w > 0 && (size_t)w < sizeof(list) - at)
			at += (size_t)w;
		total += counts[i];
	}
	if (failed)
		log_warn("retention run failed after removing %" PRIu64 " rows older than %s"
			 " (%" PRId64 " days): %s; %s; trying again at the next run",
			 total, cutoff, days, list, failed);
	else
		log_info("retention run: removed %" PRIu64 " rows older than %s (%" PRId64
			 " days) in %" PRId64 " ms: %s",
			 total, cutoff, days, took_ms, list);
}

static void *
retention_thread(void *arg)
{
	struct retention *r = arg;
	struct backoff backoff;
	int64_t next_ms = 0;
	char err[1024];

	backoff_init(&backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	while (!wait_until(r, next_ms)) {
		int64_t days = atomic_load(&r->days), started_ms = clocks_mono_ms();
		uint64_t counts[RETENTION_TABLES] = { 0 };
		char cutoff[64] = "?";
		int rc;

		if (days == 0) {
			/* At start, hourly and after each reload: what a run would
			 * have been (the tests wait for it). */
			log_info("retention off (retention_days = 0): no event rows removed");
			next_ms = started_ms + RETENTION_PERIOD_MS;
			continue;
		}
		if (!r->conn && connect_db(r, err, sizeof(err)) < 0) {
			log_warn("retention: cannot connect to PostgreSQL (%s); retrying", err);
			next_ms = started_ms + backoff_next(&backoff);
			continue;
		}
		backoff_reset(&backoff);
		rc = run(r, days, counts, cutoff, sizeof(cutoff), err, sizeof(err));
		if (rc < 0 && quitting(r))
			break; /* stopped between two batches: nothing failed */
		if (rc == 1) {
			/* The store migrates at start: look again shortly. */
			next_ms = started_ms + SCHEMA_WAIT_MS;
			continue;
		}
		next_ms = started_ms + RETENTION_PERIOD_MS;
		if (rc < 0 && PQstatus(r->conn) != CONNECTION_OK) {
			/* The connection went away since the last run (a server
			 * restart, a failover to a standby): the run again on a
			 * new one after the backoff, not an hour later. */
			int64_t wait = backoff_next(&backoff);

			log_warn("retention: the connection to PostgreSQL was lost (%s); the run"
				 " again on a new one in %" PRId64 " ms",
				 err, wait);
			atomic_fetch_add(&r->failures, 1);
			PQfinish(r->conn);
			r->conn = NULL;
			next_ms = started_ms + wait;
			continue;
		}
		log_run(cutoff, days, counts, clocks_mono_ms() - started_ms, rc < 0 ? err : NULL);
		if (rc < 0)
			atomic_fetch_add(&r->failures, 1);
		else
			atomic_fetch_add(&r->runs, 1);
	}
	PQfinish(r->conn);
	r->conn = NULL;
	return NULL;
}

int
retention_create(const char *conninfo, int64_t days, struct retention **ret)
{
	struct retention *r = calloc(1, sizeof(*r));
	pthread_condattr_t attr;
	int err;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &attr);
	pthread_condattr_destroy(&attr);
	atomic_store(&r->days, days);
	r->conninfo = strdup(conninfo);
	if (!r->conninfo) {
		retention_destroy(r);
		return -ENOMEM;
	}
	err = pthread_create(&r->thread, NULL, retention_thread, r);
	if (err) {
		retention_destroy(r);
		return -err;
	}
	r->started = 1;
	*ret = r;
	return 0;
}

void
retention_reconfigure(struct retention *r, int64_t days)
{
	if (!r)
		return;
	atomic_store(&r->days, days);
	pthread_mutex_lock(&r->lock);
	r->run_now = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
retention_destroy(struct retention *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->quit = 1;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r->conninfo);
	free(r);
}
