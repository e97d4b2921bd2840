/* store.c - the writer thread.
 *
 * One transaction per batch: COPY the events straight into their table,
 * or, when that fails (a row already there), into a temporary staging
 * table and INSERT ... SELECT ... ON CONFLICT DO NOTHING into the event
 * table; insert the rejects, move the spool checkpoint, COMMIT. A
 * batch that fails on a broken connection is retried on a new one after a
 * capped exponential backoff; since every row is keyed by the message,
 * a retry can never double a row. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "tables.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 15000

struct store {
	char *conninfo;
	char *instance;
	char *spool_id;
	char *topic_root;
	int done_fd;
	pthread_t thread;
	int started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int quit;
	struct store_batch *pending;	/* handed in, not yet committed */
	struct store_batch *done;	/* committed, not yet taken back */

	/* only the thread touches these */
	PGconn *conn;
	char *copybuf;
	size_t copylen, copycap;
	int64_t backoff_ms;

	_Atomic int db_up;
	_Atomic uint64_t batches, events_written, rejects_written, db_checkpoint;
	/* under lock */
	uint64_t rows_by_type[EVENT_TYPES + 1];
	struct histogram batch_rows, batch_seconds;
	_Atomic int have_db_checkpoint;
};

/* ---- batches (main thread) ---- */

int
store_batch_add_event(struct store_batch *b, const struct event *ev)
{
	if (b->nevents == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct event *e = realloc(b->events, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		b->events = e;
		b->cap = cap;
	}
	b->events[b->nevents++] = *ev;
	return 0;
}

int
store_batch_add_reject(struct store_batch *b, const struct store_reject *r,
		       const char *topic, size_t topic_len,
		       const uint8_t *payload, size_t len)
{
	struct store_reject *dst;

	if (b->nrejects == b->rcap) {
		size_t cap = b->rcap ? b->rcap * 2 : 16;
		struct store_reject *n = realloc(b->rejects, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->rejects = n;
		b->rcap = cap;
	}
	dst = &b->rejects[b->nrejects];
	*dst = *r;
	dst->topic = strndup(topic, topic_len);
	dst->payload = malloc(len ? len : 1);
	if (!dst->topic || !dst->payload) {
		free(dst->topic);
		free(dst->payload);
		return -ENOMEM;
	}
	memcpy(dst->payload, payload, len);
	dst->payload_len = len;
	b->nrejects++;
	return 0;
}

int
store_batch_add_alert(struct store_batch *b, const struct alert_transition *t)
{
	if (b->nalerts == b->acap) {
		size_t cap = b->acap ? b->acap * 2 : 64;
		struct alert_transition *n = realloc(b->alerts, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->alerts = n;
		b->acap = cap;
	}
	b->alerts[b->nalerts++] = *t;
	return 0;
}

void
store_batch_clear(struct store_batch *b)
{
	for (size_t i = 0; i < b->nrejects; i++) {
		free(b->rejects[i].topic);
		free(b->rejects[i].payload);
	}
	b->nevents = 0;
	b->nrejects = 0;
	b->nalerts = 0;
	b->end_pos = 0;
}

void
store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	store_batch_clear(b);
	free(b->events);
	free(b->rejects);
	free(b->alerts);
	free(b);
}

size_t
store_batch_rows(const struct store_batch *b)
{
	return b->nevents + b->nrejects + b->nalerts;
}

/* ---- COPY formatting (store thread) ---- */

static int
buf_reserve(struct store *s, size_t more)
{
	if (s->copylen + more > s->copycap) {
		size_t cap = s->copycap ? s->copycap : 65536;
		char *n;

		while (cap < s->copylen + more)
			cap *= 2;
		n = realloc(s->copybuf, cap);
		if (!n)
			return -ENOMEM;
		s->copybuf = n;
		s->copycap = cap;
	}
	return 0;
}

/* Appends a COPY text field (escaped), then `sep`. NULL for "". */
static void
put_field(struct store *s, const char *v, char sep)
{
	if (!v || !*v) {
		memcpy(s->copybuf + s->copylen, "\\N", 2);
		s->copylen += 2;
	} else {
		for (; *v; v++) {
			if (*v == '\\' || *v == '\t' || *v == '\n' || *v == '\r')
				s->copybuf[s->copylen++] = '\\';
			s->copybuf[s->copylen++] = *v;
		}
	}
	s->copybuf[s->copylen++] = sep;
}

/* Formats the events of `type` in the batch as COPY text; returns the
 * number of rows, or -ENOMEM. */
static int
format_events(struct store *s, const struct store_batch *b, const struct table_desc *t)
{
	int rows = 0;

	s->copylen = 0;
	for (size_t i = 0; i < b->nevents; i++) {
		struct table_row row;

		if (b->events[i].type != t->type)
			continue;
		/* Every field is at most 2 * NORM_TEXT_MAX + 8 bytes, doubled
		 * by escaping. */
		if (buf_reserve(s, (size_t)t->ncols * 2 * (2 * NORM_TEXT_MAX + 8)) < 0)
			return -ENOMEM;
		tables_row(&b->events[i], &row);
		for (int c = 0; c < t->ncols; c++)
			put_field(s, row.v[c], c == t->ncols - 1 ? '\n' : '\t');
		rows++;
	}
	return rows;
}

/* ---- the thread ---- */

static void
log_db_error(struct store *s, const char *what, PGresult *res)
{
	char buf[512];

	db_error_text(s->conn, res, buf, sizeof(buf));
	log_err("PostgreSQL %s failed: %s", what, buf);
}

static int
exec_ok(struct store *s, const char *sql)
{
	PGresult *res = PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		log_db_error(s, sql, res);
	PQclear(res);
	return ok;
}

static void
read_checkpoint(struct store *s)
{
	const char *params[1] = { s->instance };
	PGresult *res = PQexecParams(s->conn,
		"SELECT spool_id, position FROM spool_checkpoint WHERE instance = $1",
		1, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), s->spool_id) == 0) {
		atomic_store(&s->db_checkpoint, strtoull(PQgetvalue(res, 0, 1), NULL, 10));
		atomic_store(&s->have_db_checkpoint, 1);
	}
	PQclear(res);
}

static int
create_staging(struct store *s)
{
	const struct table_desc *all;
	size_t n;

	all = tables_all(&n);
	for (size_t i = 0; i < n; i++) {
		char sql[256];

		snprintf(sql, sizeof(sql), "CREATE TEMP TABLE stage_%s (LIKE %s INCLUDING DEFAULTS)"
			 " ON COMMIT DELETE ROWS", all[i].table, all[i].table);
		if (!exec_ok(s, sql))
			return -1;
	}
	return 0;
}

/* Connects, migrates and prepares the session; 0 or -1. */
static int
connect_db(struct store *s)
{
	char err[1024];
	int version;

	s->conn = db_connect(s->conninfo, "cordond");
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
		goto fail_quiet;
	version = db_migrate(s->conn, err, sizeof(err), NULL);
	if (version < 0) {
		log_err("%s; retrying", err);
		goto fail;
	}
	if (create_staging(s) < 0 || !exec_ok(s, "SET synchronous_commit = on"))
		goto fail;
	read_checkpoint(s);
	log_notice("PostgreSQL connected (schema version %d)", version);
	return 0;
fail_quiet:
	if (atomic_load(&s->db_up) || s->backoff_ms == BACKOFF_MIN_MS) {
		char msg[512];
		size_t n;

		snprintf(msg, sizeof(msg), "%s", s->conn ? PQerrorMessage(s->conn) : "out of memory");
		for (n = strlen(msg); n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ');)
			msg[--n] = '\0';
		for (char *p = msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
		log_warn("PostgreSQL unreachable, retrying with backoff up to %d s: %s",
			 BACKOFF_MAX_MS / 1000, msg);
	}
fail:
	PQfinish(s->conn);
	s->conn = NULL;
	return -1;
}

/* Inserts one reject; returns the result status check (1 ok, 0 failed). */
static int
insert_reject(struct store *s, const struct store_reject *r, int quiet)
{
	char rx[40], olen[24];
	const char *vals[7];
	int lens[7] = { 0 }, fmts[7] = { 0 };
	PGresult *res;
	int ok;

	normalize_format_time(r->received_us, rx, sizeof(rx));
	snprintf(olen, sizeof(olen), "%zu", r->orig_len);
	vals[0] = r->key;
	vals[1] = rx;
	vals[2] = r->topic;
	vals[3] = r->reason;
	vals[4] = r->detail;
	vals[5] = (const char *)r->payload;
	lens[5] = (int)r->payload_len;
	fmts[5] = 1;
	vals[6] = olen;
	res = PQexecParams(s->conn,
		"INSERT INTO rejects (reject_key, received_at, topic, reason, detail,"
		" payload, payload_len) VALUES ($1, $2, $3, $4, $5, $6, $7)"
		" ON CONFLICT (reject_key) DO NOTHING",
		7, NULL, vals, lens, fmts, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok && !quiet)
		log_db_error(s, "insert into rejects", res);
	PQclear(res);
	return ok;
}

static int
write_rejects(struct store *s, const struct store_batch *b)
{
	for (size_t i = 0; i < b->nrejects; i++)
		if (!insert_reject(s, &b->rejects[i], 0))
			return -1;
	return 0;
}

/* COPYs the formatted rows into `target`. `prefix` is sent with the COPY
 * in the same round trip (a SAVEPOINT); `quiet`: a refused COPY is
 * expected and not an error. 0 or -1. */
static int
copy_rows(struct store *s, const struct table_desc *t, const char *prefix, const char *target,
	  int quiet)
{
	char sql[512];
	PGresult *res;
	int ok;

	snprintf(sql, sizeof(sql), "%sCOPY %s (%s) FROM STDIN", prefix, target, t->columns);
	res = PQexec(s->conn, sql);
	ok = PQresultStatus(res) == PGRES_COPY_IN;
	if (!ok)
		log_db_error(s, "COPY", res);
	PQclear(res);
	if (!ok)
		return -1;
	if (PQputCopyData(s->conn, s->copybuf, (int)s->copylen) != 1 ||
	    PQputCopyEnd(s->conn, NULL) != 1) {
		log_db_error(s, "COPY data", NULL);
		return -1;
	}
	res = PQgetResult(s->conn);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok && !quiet)
		log_db_error(s, "COPY", res);
	else if (!ok)
		log_debug("COPY into %s refused (%s); through the staging table", target,
			  PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
			  PQresultErrorField(res, PG_DIAG_SQLSTATE) : "?");
	PQclear(res);
	while ((res = PQgetResult(s->conn)) != NULL)
		PQclear(res);
	return ok ? 0 : -1;
}

/* Writes one table's formatted rows: straight into the table when it
 * takes them all, else (a row already there: a replay after a restart, a
 * device sending twice; or a row it refuses) into its staging table and
 * from there with ON CONFLICT DO NOTHING. The direct COPY is about twice
 * as cheap for PostgreSQL; a refused one is undone to its savepoint. */
static int
write_table(struct store *s, const struct table_desc *t)
{
	char stage[64];

	if (t->direct) {
		if (copy_rows(s, t, "SAVEPOINT direct; ", t->table, 1) == 0)
			return 0;
		if (PQstatus(s->conn) != CONNECTION_OK || !exec_ok(s, "ROLLBACK TO SAVEPOINT direct"))
			return -1;
	}
	snprintf(stage, sizeof(stage), "stage_%s", t->table);
	return copy_rows(s, t, "", stage, 0) == 0 && exec_ok(s, t->insert_sql) ? 0 : -1;
}

/* Each type's events into its table. */
static int
write_events(struct store *s, const struct store_batch *b)
{
	const struct table_desc *all;
	size_t n;

	if (b->nevents == 0)
		return 0;
	all = tables_all(&n);
	for (size_t i = 0; i < n; i++) {
		int rows = format_events(s, b, &all[i]);

		if (rows < 0)
			return -1;
		if (rows == 0)
			continue;
		if (write_table(s, &all[i]) < 0)
			return -1;
	}
	return 0;
}

static const char *
opt_text(const char *s)
{
	return s[0] ? s : NULL;
}

/* Each transition: the alert's row as it is after it (a resolved alert
 * is never reopened by a replay), and the transition itself. */
static int
write_alerts(struct store *s, const struct store_batch *b)
{
	for (size_t i = 0; i < b->nalerts; i++) {
		const struct alert_transition *t = &b->alerts[i];
		const struct alert *a = &t->a;
		char raised[40], updated[40], resolved[40], count[16], temp[16];
		const char *v[19];
		PGresult *res;
		int ok;

		normalize_format_time(a->raised_us, raised, sizeof(raised));
		normalize_format_time(a->updated_us, updated, sizeof(updated));
		normalize_format_time(a->resolved_us, resolved, sizeof(resolved));
		snprintf(count, sizeof(count), "%u", a->count);
		if (a->temp_dc != TEMP_NONE)
			snprintf(temp, sizeof(temp), "%d.%d", a->temp_dc / 10,
				 (a->temp_dc < 0 ? -a->temp_dc : a->temp_dc) % 10);
		v[0] = a->alert_id;
		v[1] = a->site;
		v[2] = rules_kind_name(a->kind);
		v[3] = rules_severity_name(a->severity);
		v[4] = rules_state_name(a->state);
		v[5] = a->subject;
		v[6] = a->event_key;
		v[7] = opt_text(a->gate);
		v[8] = opt_text(a->household);
		v[9] = opt_text(a->card);
		v[10] = opt_text(a->zone);
		v[11] = opt_text(a->call_id);
		v[12] = a->temp_dc != TEMP_NONE ? temp : NULL;
		v[13] = raised;
		v[14] = updated;
		v[15] = a->resolved_us ? resolved : NULL;
		v[16] = count;
		v[17] = opt_text(a->reason);
		v[18] = opt_text(a->by);
		res = PQexecParams(s->conn,
			"INSERT INTO alerts (alert_id, site, kind, severity, state, subject, event_key,"
			" gate, household, card, zone, call_id, temp_c, raised_at, updated_at,"
			" resolved_at, count, reason, by_whom) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
			" $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
			" ON CONFLICT (alert_id) DO UPDATE SET severity = excluded.severity,"
			" state = excluded.state, temp_c = excluded.temp_c,"
			" updated_at = excluded.updated_at, resolved_at = excluded.resolved_at,"
			" count = excluded.count, reason = excluded.reason, by_whom = excluded.by_whom"
			" WHERE alerts.state <> 'resolved'",
			19, NULL, v, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			log_db_error(s, "alert upsert", res);
		PQclear(res);
		if (!ok)
			return -1;
		v[0] = a->alert_id;
		v[1] = t->what;
		v[2] = count;
		v[3] = updated;
		v[4] = rules_severity_name(a->severity);
		v[5] = opt_text(a->by);
		v[6] = opt_text(a->reason);
		res = PQexecParams(s->conn,
			"INSERT INTO alert_transitions (alert_id, transition, count, at, severity,"
			" by_whom, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)"
			" ON CONFLICT DO NOTHING", 7, NULL, v, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			log_db_error(s, "alert transition", res);
		PQclear(res);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Moves the checkpoint and commits; 0 or -1. */
static int
commit_with_checkpoint(struct store *s, uint64_t end_pos)
{
	char pos[24];
	const char *vals[3] = { s->instance, s->spool_id, pos };
	PGresult *res;
	int ok;

	snprintf(pos, sizeof(pos), "%" PRIu64, end_pos);
	res = PQexecParams(s->conn,
		"INSERT INTO spool_checkpoint (instance, spool_id, position) VALUES ($1, $2, $3)"
		" ON CONFLICT (instance) DO UPDATE SET spool_id = excluded.spool_id,"
		" position = CASE WHEN spool_checkpoint.spool_id = excluded.spool_id"
		"   THEN greatest(spool_checkpoint.position, excluded.position)"
		"   ELSE excluded.position END, updated_at = now()",
		3, NULL, vals, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		log_db_error(s, "checkpoint", res);
	PQclear(res);
	return ok && exec_ok(s, "COMMIT") ? 0 : -1;
}

static void
rollback(struct store *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

static int
write_batch(struct store *s, const struct store_batch *b)
{
	if (!exec_ok(s, "BEGIN"))
		return -1;
	if (write_events(s, b) < 0 || write_rejects(s, b) < 0 || write_alerts(s, b) < 0 ||
	    commit_with_checkpoint(s, b->end_pos) < 0) {
		rollback(s);
		return -1;
	}
	return 0;
}

/* The topic an event came on (for a row turned reject). */
static void
event_topic(struct store *s, const struct event *ev, char *buf, size_t len)
{
	switch (ev->type) {
	case EVENT_GATE:
		snprintf(buf, len, "%s/%s/gate/%s/event", s->topic_root, ev->site, ev->gate);
		break;
	case EVENT_STATUS:
		snprintf(buf, len, "%s/%s/gate/%s/status", s->topic_root, ev->site, ev->gate);
		break;
	case EVENT_DISINFECTION:
		snprintf(buf, len, "%s/%s/disinfection/%s", s->topic_root, ev->site, ev->zone);
		break;
	case EVENT_HOTLINE:
		snprintf(buf, len, "%s/%s/hotline", s->topic_root, ev->site);
		break;
	case EVENT_CHECK:
		snprintf(buf, len, "%s/%s/isolation/%s/check", s->topic_root, ev->site,
			 ev->household);
		break;
	case EVENT_ACK:
		snprintf(buf, len, "%s/%s/ack", s->topic_root, ev->site);
		break;
	}
}

/* Turns a row PostgreSQL refused into a reject: reason store_failed, the
 * SQLSTATE and message as detail, the row's fields as payload. */
static void
reject_row(struct store *s, const struct event *ev, const struct table_desc *t,
	   const struct table_row *row, PGresult *res)
{
	struct store_reject r = { .received_us = ev->received_us, .reason = "store_failed" };
	char payload[2048], topic[256];
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	size_t n = 0;

	for (int c = 0; c < t->ncols && n < sizeof(payload); c++)
		n += (size_t)snprintf(payload + n, sizeof(payload) - n, "%s%s",
				      c ? "\t" : "", row->v[c] ? row->v[c] : "\\N");
	event_topic(s, ev, topic, sizeof(topic));
	snprintf(r.key, sizeof(r.key), "row:%s", ev->key);
	snprintf(r.detail, sizeof(r.detail), "PostgreSQL refused the row: %s %s",
		 state ? state : "?", msg ? msg : "");
	r.topic = topic;
	r.payload = (uint8_t *)payload;
	r.payload_len = n < sizeof(payload) ? n : sizeof(payload) - 1;
	r.orig_len = r.payload_len;
	log_err("event %s: %s; stored in rejects as store_failed", ev->key, r.detail);
	if (!insert_reject(s, &r, 0))
		log_err("event %s could not be stored as a reject either", ev->key);
}

/* After a batch failed on its data (not its connection): the same batch
 * row by row, each behind a savepoint, so that one row PostgreSQL will
 * not take becomes a reject instead of blocking every row behind it. */
static int
write_batch_rowwise(struct store *s, const struct store_batch *b)
{
	if (!exec_ok(s, "BEGIN"))
		return -1;
	for (size_t i = 0; i < b->nevents; i++) {
		const struct event *ev = &b->events[i];
		const struct table_desc *t = tables_for(ev->type);
		struct table_row row;
		PGresult *res;

		tables_row(ev, &row);
		if (!exec_ok(s, "SAVEPOINT row"))
			goto fail;
		res = PQexecParams(s->conn, t->insert_one_sql, t->ncols, NULL, row.v, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (PQstatus(s->conn) != CONNECTION_OK) {
				PQclear(res);
				goto fail;
			}
			if (!exec_ok(s, "ROLLBACK TO SAVEPOINT row")) {
				PQclear(res);
				goto fail;
			}
			reject_row(s, ev, t, &row, res);
		}
		PQclear(res);
	}
	for (size_t i = 0; i < b->nrejects; i++) {
		if (!exec_ok(s, "SAVEPOINT row"))
			goto fail;
		if (!insert_reject(s, &b->rejects[i], 0)) {
			if (PQstatus(s->conn) != CONNECTION_OK ||
			    !exec_ok(s, "ROLLBACK TO SAVEPOINT row"))
				goto fail;
			log_err("reject %s dropped: PostgreSQL refused it", b->rejects[i].key);
		}
	}
	if (write_alerts(s, b) < 0 || commit_with_checkpoint(s, b->end_pos) < 0)
		goto fail;
	return 0;
fail:
	rollback(s);
	return -1;
}

/* Writes the batch whole, or row by row when the whole failed on its
 * data; 0, or -1 to retry later (connection lost, or the row-by-row
 * pass failed too). */
static int
write_batch_any(struct store *s, const struct store_batch *b)
{
	if (write_batch(s, b) == 0)
		return 0;
	if (PQstatus(s->conn) != CONNECTION_OK)
		return -1;
	log_warn("batch of %zu rows failed on its data; writing it row by row",
		 store_batch_rows(b));
	return write_batch_rowwise(s, b);
}

static void
wait_backoff(struct store *s)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += s->backoff_ms / 1000;
	until.tv_nsec += (s->backoff_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->quit && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
		;
	pthread_mutex_unlock(&s->lock);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
store_thread(void *arg)
{
	struct store *s = arg;

	s->backoff_ms = BACKOFF_MIN_MS;
	for (;;) {
		struct store_batch *b;
		int64_t t0;

		pthread_mutex_lock(&s->lock);
		if (s->quit) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		b = s->pending;
		if (s->conn && !b) {
			pthread_cond_wait(&s->cond, &s->lock);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		pthread_mutex_unlock(&s->lock);

		if (!s->conn) {
			if (connect_db(s) < 0) {
				atomic_store(&s->db_up, 0);
				wait_backoff(s);
				continue;
			}
			atomic_store(&s->db_up, 1);
			s->backoff_ms = BACKOFF_MIN_MS;
			continue;
		}
		t0 = mono_us();
		if (write_batch_any(s, b) < 0) {
			if (PQstatus(s->conn) != CONNECTION_OK) {
				log_warn("PostgreSQL connection lost; the batch stays in the spool and is retried");
				PQfinish(s->conn);
				s->conn = NULL;
				atomic_store(&s->db_up, 0);
			}
			wait_backoff(s);
			continue;
		}
		s->backoff_ms = BACKOFF_MIN_MS;
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < b->nevents; i++)
			s->rows_by_type[b->events[i].type]++;
		histogram_observe(&s->batch_rows, (double)store_batch_rows(b));
		histogram_observe(&s->batch_seconds, (double)(mono_us() - t0) / 1e6);
		pthread_mutex_unlock(&s->lock);
		atomic_fetch_add(&s->batches, 1);
		atomic_fetch_add(&s->events_written, b->nevents);
		atomic_fetch_add(&s->rejects_written, b->nrejects);
		pthread_mutex_lock(&s->lock);
		s->pending = NULL;
		s->done = b;
		pthread_mutex_unlock(&s->lock);
		if (eventfd_write(s->done_fd, 1) < 0)
			log_err("store: cannot wake the main loop: %s", strerror(errno));
	}
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	return NULL;
}

int
store_create(const struct store_options *opt, int done_fd, struct store **ret_store)
{
	struct store *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	static const double rows_bounds[HIST_BUCKETS] = {
		1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000, 100000 };
	static const double sec_bounds[HIST_BUCKETS] = {
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10 };

	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->batch_rows.bounds = rows_bounds;
	s->batch_seconds.bounds = sec_bounds;
	s->done_fd = done_fd;
	s->conninfo = strdup(opt->conninfo);
	s->instance = strdup(opt->instance);
	s->spool_id = strdup(opt->spool_id);
	s->topic_root = strdup(opt->topic_root);
	if (!s->conninfo || !s->instance || !s->spool_id || !s->topic_root) {
		store_destroy(s);
		return -ENOMEM;
	}
	err = pthread_create(&s->thread, NULL, store_thread, s);
	if (err) {
		store_destroy(s);
		return -err;
	}
	s->started = 1;
	*ret_store = s;
	return 0;
}

void
store_destroy(struct store *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->quit = 1;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->copybuf);
	free(s->conninfo);
	free(s->instance);
	free(s->spool_id);
	free(s->topic_root);
	free(s);
}

int
store_submit(struct store *s, struct store_batch *b)
{
	int err = 0;

	pthread_mutex_lock(&s->lock);
	if (s->pending || s->done)
		err = -EBUSY;
	else {
		s->pending = b;
		pthread_cond_signal(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

struct store_batch *
store_take_done(struct store *s)
{
	struct store_batch *b;

	pthread_mutex_lock(&s->lock);
	b = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	return b;
}

int
store_busy(struct store *s)
{
	int busy;

	pthread_mutex_lock(&s->lock);
	busy = s->pending != NULL || s->done != NULL;
	pthread_mutex_unlock(&s->lock);
	return busy;
}

void
store_get_stats(struct store *s, struct store_stats *ret)
{
	ret->db_up = atomic_load(&s->db_up);
	ret->batches = atomic_load(&s->batches);
	ret->events_written = atomic_load(&s->events_written);
	ret->rejects_written = atomic_load(&s->rejects_written);
	ret->db_checkpoint = atomic_load(&s->db_checkpoint);
	pthread_mutex_lock(&s->lock);
	memcpy(ret->rows_by_type, s->rows_by_type, sizeof(ret->rows_by_type));
	ret->batch_rows = s->batch_rows;
	ret->batch_seconds = s->batch_seconds;
	pthread_mutex_unlock(&s->lock);
	ret->have_db_checkpoint = atomic_load(&s->have_db_checkpoint);
}
