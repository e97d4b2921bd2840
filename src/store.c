/* store.c - the writer thread.
 *
 * One transaction per batch: COPY the events straight into their table,
 * or, when that fails (a row already there), into a temporary staging
 * table and INSERT ... SELECT ... ON CONFLICT DO NOTHING into the event
 * table; insert the rejects, move the spool checkpoint, COMMIT. Since
 * every row is keyed by the message, a retry can never double a row.
 *
 * What a failure means depends on its SQLSTATE (step_failed()):
 * - the connection is gone: reconnect after a capped exponential backoff;
 * - class 22 or 23 (the data): the batch again row by row, each row behind
 *   a savepoint; a row refused for its data becomes a store_failed reject;
 * - anything else (a privilege, a renamed column, a timeout, a lock, a
 *   read-only server, a full disk): not the data's fault, so no row may
 *   become a reject. The batch is held: it stays in the spool, the
 *   connection is dropped (a new session rebuilds its staging tables and
 *   picks up role settings), and it is retried after the backoff until
 *   PostgreSQL takes it. A statement timeout also halves the events per
 *   transaction, for batches that are too big for the timeout.
 * Each change of state (up, unreachable, held by SQLSTATE X) is logged
 * once, not each retry. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "backoff.h"
#include "clocks.h"
#include "db.h"
#include "log.h"
#include "tables.h"
#include "topics.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 15000

/* Where the thread is; each change is logged once. */
enum db_state {
	DB_START, /* not connected yet */
	DB_UP,	  /* connected, writes go through */
	DB_DOWN,  /* unreachable, or the connection was lost */
	DB_HELD,  /* reachable, but refuses our writes for a reason that is not the data */
};

/* The last step that failed. */
struct pg_error {
	char sqlstate[DB_SQLSTATE_LEN]; /* "" when PostgreSQL sent none */
	char what[64];			/* the step */
	char message[256];		/* the primary message, one line */
	bool in_events;			/* it was an event table's COPY or INSERT */
};

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
	PGcancel *cancel;	     /* of conn: store_destroy() cancels its statement */
	struct store_batch *pending; /* handed in, not yet committed */
	struct store_batch *done;    /* committed, not yet taken back */

	/* only the thread touches these */
	PGconn *conn;
	char *copybuf;
	size_t copylen, copycap;
	struct backoff backoff; /* BACKOFF_MIN_MS to BACKOFF_MAX_MS */
	enum db_state state;
	bool unreachable_logged; /* this outage's "unreachable" line is out */
	int schema_version;
	struct pg_error err;
	int64_t held_since_us; /* CLOCK_MONOTONIC */
	uint64_t held_attempts;
	size_t part_events; /* after a statement timeout: events per transaction (0: all) */
	const struct store_batch *resume_batch; /* its parts before resume_from are committed */
	uint64_t resume_end;
	size_t resume_from;
	uint64_t part_rejected;	     /* rows turned rejects in the transaction under way */
	struct log_ratelimit row_rl; /* rows refused for their data */
	/* Alert rows of a stale epoch left out in the transaction under way
	 * (the first one's shard, epoch and the shard's epoch now). */
	uint64_t part_fenced;
	int fenced_shard;
	int64_t fenced_epoch, fenced_now;
	struct log_ratelimit fence_rl;
	/* Readings stored under a derived key in the transaction under way
	 * (a device reused their record id), by type; the first one's key. */
	uint64_t part_reused[EVENT_TYPES + 1];
	char part_reused_key[NORM_STORED_KEY_MAX];
	struct log_ratelimit reuse_rl;

	_Atomic int db_up, writes_held;
	_Atomic uint64_t batches, events_written, rejects_written, db_checkpoint;
	_Atomic uint64_t connect_attempts, rows_rejected, alert_rows_fenced;
	/* under lock */
	uint64_t rows_by_type[EVENT_TYPES + 1];
	uint64_t reused_by_type[EVENT_TYPES + 1]; /* committed part_reused */
	struct histogram batch_rows, batch_seconds;
	char held_sqlstate[DB_SQLSTATE_LEN];
	char held_reason[STORE_REASON_MAX];
	struct store_error_count write_errors[STORE_SQLSTATES_MAX];
	size_t nwrite_errors;
	uint64_t write_errors_other;
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
store_batch_add_reject(struct store_batch *b, const struct store_reject *r, const char *topic,
		       size_t topic_len, const uint8_t *payload, size_t len)
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
store_batch_add_alert(struct store_batch *b, const struct alert_transition *t, int shard,
		      int64_t epoch)
{
	if (b->nalerts == b->acap) {
		size_t cap = b->acap ? b->acap * 2 : 64;
		struct store_alert *n = realloc(b->alerts, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		b->alerts = n;
		b->acap = cap;
	}
	b->alerts[b->nalerts++] = (struct store_alert){ .t = *t, .shard = shard, .epoch = epoch };
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

/* Formats the events [from, to) of the batch that go to table `t` as
 * COPY text; returns the number of rows, or -ENOMEM. */
static int
format_events(struct store *s, const struct store_batch *b, size_t from, size_t to,
	      const struct table_desc *t)
{
	int rows = 0;

	s->copylen = 0;
	for (size_t i = from; i < to; i++) {
		struct table_row row;

		if (b->events[i].type != t->type)
			continue;
		/* A row's fields are strings in the event, in `row` or short
		 * static words, doubled at most by escaping. */
		if (buf_reserve(s, 2 * (sizeof(struct event) + sizeof(struct table_row)) + 256) < 0)
			return -ENOMEM;
		tables_row(&b->events[i], &row);
		for (int c = 0; c < t->ncols; c++)
			put_field(s, row.v[c], c == t->ncols - 1 ? '\n' : '\t');
		rows++;
	}
	return rows;
}

/* ---- errors ---- */

/* 1 once store_destroy() has begun: no statement is sent any more, and a
 * batch not committed stays in the spool for the next start. */
static bool
stopping(struct store *s)
{
	bool quit;

	pthread_mutex_lock(&s->lock);
	quit = s->quit;
	pthread_mutex_unlock(&s->lock);
	return quit;
}

/* SQLSTATE class 22 (data exception) or 23 (integrity constraint
 * violation): the row is at fault, not the database. */
static bool
is_data_error(const char *sqlstate)
{
	return sqlstate[0] == '2' && (sqlstate[1] == '2' || sqlstate[1] == '3');
}

static bool
is_statement_timeout(const char *sqlstate)
{
	return strcmp(sqlstate, "57014") == 0;
}

/* Records why step `what` failed in s->err (`res` may be NULL: then the
 * connection's own error) and classifies it. Returns -ENOTCONN when the
 * connection is gone or the server ended the session (SQLSTATE 57P*, 08*);
 * -EBADMSG when PostgreSQL refused the data (class
 * 22 or 23); else -EAGAIN: a privilege, a missing table or column, a
 * timeout, a lock, a read-only or full server are not the data's fault,
 * and the batch is held. Logs at debug only: the thread logs each change
 * of state once. */
static int
step_failed(struct store *s, const char *what, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char *p;

	snprintf(s->err.what, sizeof(s->err.what), "%s", what);
	snprintf(s->err.sqlstate, sizeof(s->err.sqlstate), "%s", state ? state : "");
	if (primary) {
		snprintf(s->err.message, sizeof(s->err.message), "%s", primary);
	} else {
		/* libpq's own messages (connection failures) run over several
		 * lines: join them. */
		snprintf(s->err.message, sizeof(s->err.message), "%s",
			 s->conn ? PQerrorMessage(s->conn) : "out of memory");
		for (size_t n = strlen(s->err.message);
		     n > 0 && (s->err.message[n - 1] == '\n' || s->err.message[n - 1] == ' ');)
			s->err.message[--n] = '\0';
	}
	for (p = s->err.message; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	normalize_utf8_trim(s->err.message); /* a localized message cut short */
	s->err.in_events = false;
	log_debug("PostgreSQL %s failed: %s %s", what, state ? state : "-", s->err.message);
	/* The server ending the session (57P01 a shutdown, the old primary's
	 * at a failover; 57P02, 57P03, 57P05) or a connection exception
	 * (08): gone, not held, even while libpq has not yet seen the socket
	 * close. */
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK ||
	    strncmp(s->err.sqlstate, "57P", 3) == 0 || strncmp(s->err.sqlstate, "08", 2) == 0)
		return -ENOTCONN;
	if (stopping(s))
		return -ECANCELED; /* cancelled by store_destroy(), or failed meanwhile */
	return is_data_error(s->err.sqlstate) ? -EBADMSG : -EAGAIN;
}

/* Refuses step `what` once the store is stopping; returns -ECANCELED. */
static int
step_refused(struct store *s, const char *what)
{
	snprintf(s->err.what, sizeof(s->err.what), "%s", what);
	s->err.sqlstate[0] = '\0';
	snprintf(s->err.message, sizeof(s->err.message), "cordond is stopping");
	s->err.in_events = false;
	return -ECANCELED;
}

/* Records an allocation failure as the error; returns -ENOMEM. */
static int
no_memory(struct store *s, const char *what)
{
	snprintf(s->err.what, sizeof(s->err.what), "%s", what);
	s->err.sqlstate[0] = '\0';
	snprintf(s->err.message, sizeof(s->err.message), "out of memory");
	s->err.in_events = false;
	return -ENOMEM;
}

/* Counts one failed write attempt under `sqlstate`. */
static void
count_error(struct store *s, const char *sqlstate)
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nwrite_errors; i++)
		if (strcmp(s->write_errors[i].sqlstate, sqlstate) == 0)
			break;
	if (i == s->nwrite_errors && i < STORE_SQLSTATES_MAX) {
		snprintf(s->write_errors[i].sqlstate, sizeof(s->write_errors[i].sqlstate), "%s",
			 sqlstate);
		s->write_errors[i].count = 0;
		s->nwrite_errors++;
	}
	if (i < s->nwrite_errors)
		s->write_errors[i].count++;
	else
		s->write_errors_other++;
	pthread_mutex_unlock(&s->lock);
}

/* ---- text PostgreSQL takes ---- */

/* Length of the valid UTF-8 sequence at `p` (at most `left` bytes), or 0
 * when the byte there does not start one (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF; NUL is not text either). */
static size_t
utf8_char_len(const unsigned char *p, size_t left)
{
	size_t n;
	unsigned c = p[0];

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/* Copies the NUL-terminated `in` with every byte that is not part of a
 * valid UTF-8 character written as \xNN, so that PostgreSQL takes it as
 * text. Returns a malloc'ed string, or NULL when out of memory. */
static char *
utf8_escape(const char *in)
{
	size_t len = strlen(in), n = 0;
	char *out = malloc(4 * len + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t c = utf8_char_len((const unsigned char *)in + i, len - i);

		if (c == 0) {
			n += (size_t)sprintf(out + n, "\\x%02x", (unsigned char)in[i]);
			i++;
		} else {
			memcpy(out + n, in + i, c);
			n += c;
			i += c;
		}
	}
	out[n] = '\0';
	return out;
}

/* Replaces each non-NULL v[i] (i < n) whose bit is set in `mask` by its
 * escaped copy (utf8_escape()), stored in ret_copies[i]; 0 or -ENOMEM
 * (the copies made so far are then freed). */
static int
escape_values(const char **v, int n, unsigned mask, char **ret_copies)
{
	for (int i = 0; i < n; i++) {
		ret_copies[i] = NULL;
		if (!(mask & (1u << i)) || !v[i])
			continue;
		ret_copies[i] = utf8_escape(v[i]);
		if (!ret_copies[i]) {
			while (i-- > 0)
				free(ret_copies[i]);
			return -ENOMEM;
		}
		v[i] = ret_copies[i];
	}
	return 0;
}

static void
free_values(char **copies, int n)
{
	for (int i = 0; i < n; i++)
		free(copies[i]);
}

/* ---- statements ---- */

/* Runs `sql` (no parameters; `what` names it in errors, NULL: the SQL
 * itself). Returns 0, or as step_failed(). */
static int
exec_sql(struct store *s, const char *sql, const char *what)
{
	PGresult *res;
	ExecStatusType st;
	int err = 0;

	if (stopping(s))
		return step_refused(s, what ? what : sql);
	res = PQexec(s->conn, sql);
	st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		err = step_failed(s, what ? what : sql, res);
	PQclear(res);
	return err;
}

/* Runs a parameterized statement; 0, or as step_failed(). */
static int
exec_params(struct store *s, const char *sql, int n, const char *const *v, const int *lens,
	    const int *fmts, const char *what)
{
	PGresult *res;
	int err = 0;

	if (stopping(s))
		return step_refused(s, what);
	res = PQexecParams(s->conn, sql, n, NULL, v, lens, fmts, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		err = step_failed(s, what, res);
	PQclear(res);
	return err;
}

/* Runs table `t`'s insert_sql (the staged rows into the table, tables.h)
 * and counts the rows it stored under a derived key (a reused record id)
 * in s->part_reused. Returns 0, or as step_failed(). */
static int
exec_staged(struct store *s, const struct table_desc *t, const char *what)
{
	PGresult *res;
	int err = 0;

	if (stopping(s))
		return step_refused(s, what);
	res = PQexec(s->conn, t->insert_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = step_failed(s, what, res);
	} else if (PQntuples(res) > 0) {
		if (!s->part_reused_key[0])
			snprintf(s->part_reused_key, sizeof(s->part_reused_key), "%s",
				 PQgetvalue(res, 0, 0));
		s->part_reused[t->type] += (uint64_t)PQntuples(res);
	}
	PQclear(res);
	return err;
}

/* Reads where this instance's checkpoint is; a failure leaves it unknown. */
static void
read_checkpoint(struct store *s)
{
	const char *params[1] = { s->instance };
	PGresult *res = PQexecParams(
		s->conn, "SELECT spool_id, position FROM spool_checkpoint WHERE instance = $1", 1,
		NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), s->spool_id) == 0) {
		atomic_store(&s->db_checkpoint, strtoull(PQgetvalue(res, 0, 1), NULL, 10));
		atomic_store(&s->have_db_checkpoint, 1);
	}
	PQclear(res);
}

/* The session's staging tables, shaped LIKE their tables as they are now
 * (hence a new session after a DBA changed one). 0, or as step_failed(). */
static int
create_staging(struct store *s)
{
	const struct table_desc *all;
	size_t n;
	int err = 0;

	all = tables_all(&n);
	for (size_t i = 0; i < n && !err; i++) {
		char sql[256], what[64];

		snprintf(sql, sizeof(sql),
			 "CREATE TEMP TABLE stage_%s (LIKE %s INCLUDING DEFAULTS)"
			 " ON COMMIT DELETE ROWS",
			 all[i].table, all[i].table);
		snprintf(what, sizeof(what), "CREATE TEMP TABLE stage_%s", all[i].table);
		err = exec_sql(s, sql, what);
	}
	if (!err)
		err = exec_sql(s,
			       "CREATE TEMP TABLE stage_alert_rows (seq integer, transition text,"
			       " shard integer, epoch bigint, LIKE alerts INCLUDING DEFAULTS)"
			       " ON COMMIT DELETE ROWS",
			       "CREATE TEMP TABLE stage_alert_rows");
	return err;
}

static void drop_connection(struct store *s);

/* Connects, checks the schema (migrating only what is missing) and
 * prepares the session: staging tables, synchronous_commit, the
 * checkpoint. Returns 0; -ENOTCONN when PostgreSQL cannot be reached (or
 * the connection broke meanwhile); -EAGAIN when it answers but refuses a
 * step (the SQLSTATE in s->err); -ENOMEM. On failure s->conn is NULL. */
static int
connect_db(struct store *s)
{
	char msg[512], state[DB_SQLSTATE_LEN];
	int version, err;

	atomic_fetch_add(&s->connect_attempts, 1);
	s->conn = db_connect(s->conninfo, "cordond");
	if (!s->conn)
		return no_memory(s, "connect");
	if (PQstatus(s->conn) != CONNECTION_OK) {
		err = step_failed(s, "connect", NULL);
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	s->cancel = PQgetCancel(s->conn);
	pthread_mutex_unlock(&s->lock);
	version = db_migrate(s->conn, msg, sizeof(msg), state);
	if (version < 0) {
		snprintf(s->err.what, sizeof(s->err.what), "schema check");
		snprintf(s->err.sqlstate, sizeof(s->err.sqlstate), "%s", state);
		snprintf(s->err.message, sizeof(s->err.message), "%.255s", msg);
		normalize_utf8_trim(s->err.message);
		s->err.in_events = false;
		err = PQstatus(s->conn) != CONNECTION_OK ? -ENOTCONN : -EAGAIN;
		goto fail;
	}
	/* jit off: the staging statement's estimate (a primary key lookup
	 * per staged row that conflicts, tables.c) passes jit_above_cost,
	 * and compiling it would cost more than running it (about 45 ms a
	 * batch, measured on PostgreSQL 15). */
	if ((err = create_staging(s)) < 0 ||
	    (err = exec_sql(s, "SET synchronous_commit = on; SET jit = off", NULL)) < 0)
		goto fail;
	read_checkpoint(s);
	s->schema_version = version;
	return 0;
fail:
	drop_connection(s);
	/* Nothing at connect is a row's fault. */
	return err == -EBADMSG ? -EAGAIN : err;
}

/* Inserts one reject (ON CONFLICT DO NOTHING: a replay adds nothing).
 * `escaped`: with its text fields (key, topic, detail) made valid UTF-8
 * first. Returns 0, or as step_failed(), or -ENOMEM. */
static int
insert_reject(struct store *s, const struct store_reject *r, bool escaped)
{
	char rx[40], olen[24];
	const char *vals[7];
	char *copies[7];
	int lens[7] = { 0 }, fmts[7] = { 0 };
	int err;

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
	if (escaped && escape_values(vals, 7, 1u << 0 | 1u << 2 | 1u << 4, copies) < 0)
		return no_memory(s, "insert into rejects");
	err = exec_params(s,
			  "INSERT INTO rejects (reject_key, received_at, topic, reason, detail,"
			  " payload, payload_len) VALUES ($1, $2, $3, $4, $5, $6, $7)"
			  " ON CONFLICT (reject_key) DO NOTHING",
			  7, vals, lens, fmts, "insert into rejects");
	if (escaped)
		free_values(copies, 7);
	return err;
}

/* Inserts a reject behind a savepoint; one PostgreSQL refuses for its
 * data (text that is not valid UTF-8) is inserted again with its text
 * escaped: a reject is never dropped. Returns 0, or as step_failed(),
 * except that a reject refused even so holds the batch (-EAGAIN). */
static int
insert_reject_surely(struct store *s, const struct store_reject *r)
{
	int err = exec_sql(s, "SAVEPOINT reject", NULL);

	if (!err)
		err = insert_reject(s, r, false);
	if (err == -EBADMSG) {
		log_limited(&s->row_rl, LOG_LEVEL_WARNING,
			    "reject on %.200s refused for its text (SQLSTATE %s %s);"
			    " stored with the text escaped",
			    r->topic, s->err.sqlstate, s->err.message);
		err = exec_sql(s, "ROLLBACK TO SAVEPOINT reject", NULL);
		if (!err)
			err = insert_reject(s, r, true);
	}
	return err == -EBADMSG ? -EAGAIN : err;
}

/* COPYs the formatted rows into `target`. `prefix` is sent with the COPY
 * in the same round trip (a SAVEPOINT). 0, or as step_failed(). */
static int
copy_rows(struct store *s, const struct table_desc *t, const char *prefix, const char *target)
{
	char sql[512], what[64];
	PGresult *res;
	int err = 0;

	snprintf(sql, sizeof(sql), "%sCOPY %s (%s) FROM STDIN", prefix, target, t->columns);
	snprintf(what, sizeof(what), "COPY %s", target);
	if (stopping(s))
		return step_refused(s, what);
	res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		err = step_failed(s, what, res);
	PQclear(res);
	if (err)
		return err;
	if (PQputCopyData(s->conn, s->copybuf, (int)s->copylen) != 1 ||
	    PQputCopyEnd(s->conn, NULL) != 1)
		err = step_failed(s, what, NULL);
	/* The COPY's result, then the NULL that ends it. */
	while ((res = PQgetResult(s->conn)) != NULL) {
		if (!err && PQresultStatus(res) != PGRES_COMMAND_OK)
			err = step_failed(s, what, res);
		PQclear(res);
	}
	return err;
}

/* Writes one table's formatted rows: straight into the table when it
 * takes them all, else (a row already there: a replay after a restart, a
 * device sending twice or reusing a record id; or a row it refuses) into
 * its staging table and from there with ON CONFLICT DO NOTHING, a row
 * whose key holds other content under a derived key (tables.h). The
 * direct COPY is about twice as cheap for PostgreSQL; one refused for its
 * data is undone to its savepoint. One refused for another reason (privilege, timeout...)
 * would fail the same way through the staging table: that ends it.
 * Returns 0, or as step_failed(). */
static int
write_table(struct store *s, const struct table_desc *t)
{
	char stage[64], what[64];
	int err;

	if (t->direct) {
		err = copy_rows(s, t, "SAVEPOINT direct; ", t->table);
		if (err != -EBADMSG)
			return err;
		log_debug("COPY into %s refused (%s); through the staging table", t->table,
			  s->err.sqlstate);
		if ((err = exec_sql(s, "ROLLBACK TO SAVEPOINT direct", NULL)) < 0)
			return err;
	}
	snprintf(stage, sizeof(stage), "stage_%s", t->table);
	snprintf(what, sizeof(what), "INSERT INTO %s", t->table);
	if ((err = copy_rows(s, t, "", stage)) < 0)
		return err;
	return exec_staged(s, t, what);
}

/* The events [from, to) of the batch, each type into its table. Returns
 * 0, or as step_failed(), or -ENOMEM. */
static int
write_events(struct store *s, const struct store_batch *b, size_t from, size_t to)
{
	const struct table_desc *all;
	size_t n;

	if (from == to)
		return 0;
	all = tables_all(&n);
	for (size_t i = 0; i < n; i++) {
		int rows = format_events(s, b, from, to, &all[i]);
		int err;

		if (rows < 0)
			return no_memory(s, "formatting the batch");
		if (rows == 0)
			continue;
		if ((err = write_table(s, &all[i])) < 0)
			return err;
	}
	return 0;
}

static const char *
opt_text(const char *s)
{
	return s[0] ? s : NULL;
}

#define ALERT_COLUMNS                                                                         \
	"alert_id, site, kind, severity, state, subject, event_key, gate, household, card,"   \
	" zone, call_id, temp_c, raised_at, updated_at, resolved_at, count, reason, by_whom," \
	" distinct_subjects, sample, event_hash"
#define ALERT_NCOLS 22
/* The text columns of ALERT_COLUMNS: 0, 1, 5..11, 17, 18, 20. */
#define ALERT_TEXT_COLS 0x160fe3u

/* What an alert row is updated with (a resolved row never changes: a
 * replay does not reopen it). */
#define ALERT_UPSERT                                                                     \
	" ON CONFLICT (alert_id) DO UPDATE SET severity = excluded.severity,"            \
	" state = excluded.state, temp_c = excluded.temp_c,"                             \
	" updated_at = excluded.updated_at, resolved_at = excluded.resolved_at,"         \
	" count = excluded.count, reason = excluded.reason, by_whom = excluded.by_whom," \
	" distinct_subjects = excluded.distinct_subjects, sample = excluded.sample"      \
	" WHERE alerts.state <> 'resolved'"

/* Text for an alert's row, in ALERT_COLUMNS order (NULL: SQL NULL). */
struct alert_row {
	char raised[40], updated[40], resolved[40], count[16], temp[16], distinct[16];
	char hash[2 * NORM_HASH_LEN + 3];
	const char *v[ALERT_NCOLS];
};

static void
alert_row(const struct alert *a, struct alert_row *row)
{
	const char **v = row->v;

	normalize_format_time(a->raised_us, row->raised, sizeof(row->raised));
	normalize_format_time(a->updated_us, row->updated, sizeof(row->updated));
	normalize_format_time(a->resolved_us, row->resolved, sizeof(row->resolved));
	snprintf(row->count, sizeof(row->count), "%u", a->count);
	snprintf(row->distinct, sizeof(row->distinct), "%u", a->distinct);
	temp_format(a->temp_dc, row->temp, sizeof(row->temp));
	v[0] = a->alert_id;
	v[1] = a->site;
	v[2] = alert_state_kind_name(a->kind);
	v[3] = alert_state_severity_name(a->severity);
	v[4] = alert_state_name(a->state);
	v[5] = a->subject;
	v[6] = a->event_key;
	v[7] = opt_text(a->gate);
	v[8] = opt_text(a->household);
	v[9] = opt_text(a->card);
	v[10] = opt_text(a->zone);
	v[11] = opt_text(a->call_id);
	v[12] = a->temp_dc != TEMP_NONE ? row->temp : NULL;
	v[13] = row->raised;
	v[14] = row->updated;
	v[15] = a->resolved_us ? row->resolved : NULL;
	v[16] = row->count;
	v[17] = opt_text(a->reason);
	v[18] = opt_text(a->by);
	v[19] = alert_state_is_aggregate(a) ? row->distinct : NULL;
	v[20] = alert_state_is_aggregate(a) ? a->sample : NULL;
	v[21] = NULL;
	for (size_t i = 0; i < NORM_HASH_LEN; i++)
		if (a->event_hash[i]) {
			size_t n = (size_t)snprintf(row->hash, sizeof(row->hash), "\\x");

			for (size_t j = 0; j < NORM_HASH_LEN; j++)
				n += (size_t)snprintf(row->hash + n, sizeof(row->hash) - n, "%02x",
						      a->event_hash[j]);
			v[21] = row->hash;
			break;
		}
}

/* One alert transition: the alert's row as it is after it (a resolved
 * alert is never reopened by a replay), and the transition itself. Two
 * round trips: for the row pass (write_alerts_rowwise) only.
 * `escaped`: text made valid UTF-8 first (a reason cut inside a
 * character). Returns 0, or as step_failed(), or -ENOMEM. */
/* Whether the lease of alert row `x`'s shard has moved past its epoch
 * (counted and noted for the log): 1, 0, or as step_failed(). The row
 * pass's check; the batched one is in the statement that writes
 * (write_alerts_fenced). */
static int
is_fenced(struct store *s, const struct store_alert *x)
{
	char shard[16], epoch[24];
	const char *v[2] = { shard, epoch };
	PGresult *res;
	int err = 0;

	if (x->shard < 0)
		return 0;
	snprintf(shard, sizeof(shard), "%d", x->shard);
	snprintf(epoch, sizeof(epoch), "%" PRId64, x->epoch);
	if (stopping(s))
		return step_refused(s, "fence check");
	res = PQexecParams(s->conn,
			   "SELECT epoch FROM shard_leases WHERE shard = $1 AND epoch > $2", 2,
			   NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = step_failed(s, "fence check", res);
	} else if (PQntuples(res) > 0) {
		if (s->part_fenced++ == 0) {
			s->fenced_shard = x->shard;
			s->fenced_epoch = x->epoch;
			s->fenced_now = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		}
		err = 1;
	}
	PQclear(res);
	return err;
}

static int
write_alert(struct store *s, const struct store_alert *x, bool escaped)
{
	const struct alert_transition *t = &x->t;
	const struct alert *a = &t->a;
	struct alert_row row;
	const char **v = row.v;
	char *copies[ALERT_NCOLS];
	int err;

	if ((err = is_fenced(s, x)) != 0)
		return err < 0 ? err : 0;
	alert_row(a, &row);
	if (escaped && escape_values(v, ALERT_NCOLS, ALERT_TEXT_COLS, copies) < 0)
		return no_memory(s, "alert upsert");
	err = exec_params(
		s,
		"INSERT INTO alerts (" ALERT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6,"
		" coalesce((SELECT derived_key FROM event_keys_reused WHERE event_key = $7"
		" AND content_hash = $22::bytea), $7), $8, $9, $10, $11, $12, $13, $14, $15, $16,"
		" $17, $18, $19, $20, $21, $22::bytea)" ALERT_UPSERT,
		ALERT_NCOLS, v, NULL, NULL, "alert upsert");
	if (!err) {
		const char *tv[7] = {
			v[0],  t->what, v[16], v[14], alert_state_severity_name(a->severity),
			v[18], v[17]
		};

		err = exec_params(
			s,
			"INSERT INTO alert_transitions (alert_id, transition, count, at, severity,"
			" by_whom, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)"
			" ON CONFLICT DO NOTHING",
			7, tv, NULL, NULL, "alert transition");
	}
	if (escaped)
		free_values(copies, ALERT_NCOLS);
	return err;
}

/* The batch's alert transitions in two round trips whatever their number:
 * one COPY into the session's stage_alert_rows (in order, numbered), then
 * one statement that upserts each alert's last row and one that inserts
 * every transition. The same rows as write_alert() one after the other:
 * within a batch an alert's identity does not change, and the last
 * transition carries its final state. Returns 0, or as step_failed(), or
 * -ENOMEM. */
/* What the staged alert rows become: an alert whose event was stored
 * under a derived key (its device reused the key: sql/0006) names that
 * row; each alert's last row upserted, every transition inserted. */
#define ALERTS_FROM_STAGE                                                                      \
	"UPDATE stage_alert_rows s SET event_key = r.derived_key FROM event_keys_reused r"     \
	" WHERE r.event_key = s.event_key AND r.content_hash = s.event_hash;"                  \
	" INSERT INTO alerts (" ALERT_COLUMNS ") SELECT DISTINCT ON (alert_id) " ALERT_COLUMNS \
	" FROM stage_alert_rows ORDER BY alert_id, seq DESC" ALERT_UPSERT ";"                  \
	" INSERT INTO alert_transitions (alert_id, transition, count, at, severity, by_whom,"  \
	" reason) SELECT alert_id, transition, count, updated_at, severity, by_whom, reason"   \
	" FROM stage_alert_rows ORDER BY seq ON CONFLICT DO NOTHING"

/* Whether a row of the batch carries a fencing token (a clustered
 * instance's alert of a site). */
static bool
has_fenced(const struct store_batch *b)
{
	for (size_t i = 0; i < b->nalerts; i++)
		if (b->alerts[i].shard >= 0)
			return true;
	return false;
}

/* The batch's alert rows into the session's stage_alert_rows (in order,
 * numbered; a fenced row with its shard and epoch) in one COPY. Returns
 * 0, or as step_failed(), or -ENOMEM. */
static int
stage_alerts(struct store *s, const struct store_batch *b)
{
	static const struct table_desc stage = {
		.table = "alerts",
		.columns = "seq, transition, shard, epoch, " ALERT_COLUMNS,
		.ncols = ALERT_NCOLS + 4,
	};

	s->copylen = 0;
	for (size_t i = 0; i < b->nalerts; i++) {
		const struct store_alert *x = &b->alerts[i];
		struct alert_row row;
		char seq[24], shard[16], epoch[24];

		if (buf_reserve(s, 2 * sizeof(struct alert) + 512) < 0)
			return no_memory(s, "formatting the alerts");
		alert_row(&x->t.a, &row);
		snprintf(seq, sizeof(seq), "%zu", i);
		snprintf(shard, sizeof(shard), "%d", x->shard);
		snprintf(epoch, sizeof(epoch), "%" PRId64, x->epoch);
		put_field(s, seq, '\t');
		put_field(s, x->t.what, '\t');
		put_field(s, x->shard >= 0 ? shard : NULL, '\t');
		put_field(s, x->shard >= 0 ? epoch : NULL, '\t');
		for (int c = 0; c < ALERT_NCOLS; c++)
			put_field(s, row.v[c], c == ALERT_NCOLS - 1 ? '\n' : '\t');
	}
	return s->copylen ? copy_rows(s, &stage, "", "stage_alert_rows") : 0;
}

/* The batch's alert transitions in two round trips whatever their number:
 * one COPY into the session's stage_alert_rows, then one statement that
 * upserts each alert's last row and one that inserts every transition.
 * The same rows as write_alert() one after the other: within a batch an
 * alert's identity does not change, and the last transition carries its
 * final state. Returns 0, or as step_failed(), or -ENOMEM. */
static int
write_alerts_batched(struct store *s, const struct store_batch *b)
{
	int err = stage_alerts(s, b);

	if (err < 0 || s->copylen == 0)
		return err;
	return exec_sql(s, ALERTS_FROM_STAGE, "insert into alerts");
}

/* The last part of a batch with fenced alert rows: the checkpoint (it
 * comes first here), the rows staged, then in ONE query string the fence,
 * the writes and the COMMIT: rows whose epoch is older than their shard's
 * in shard_leases are deleted from the stage (counted, noted for the log),
 * the rest written as write_alerts_batched() does, and the transaction
 * committed. The fence is read at most a few statements before the commit
 * and with no round trip to cordond in between, so that an instance paused
 * there (SIGSTOP, a frozen VM) cannot commit rows that a later owner's
 * lease had fenced out; what is left is a lease taken in the microseconds
 * the server takes from the DELETE to the COMMIT, and that owner reads its
 * seed after the acquisition's commit and a round trip more, by when ours
 * is committed and in its seed. Returns 0 (committed), or as
 * step_failed(), or -ENOMEM. */
static int
write_alerts_fenced(struct store *s, const struct store_batch *b)
{
	static const char sql[] =
		"DELETE FROM stage_alert_rows s USING shard_leases l WHERE s.shard IS NOT NULL"
		" AND l.shard = s.shard AND s.epoch < l.epoch RETURNING s.shard, s.epoch, l.epoch;"
		" " ALERTS_FROM_STAGE "; COMMIT";
	PGresult *res;
	int err = stage_alerts(s, b), first = 1;

	if (err < 0)
		return err;
	if (stopping(s))
		return step_refused(s, "insert into alerts");
	if (!PQsendQuery(s->conn, sql))
		return step_failed(s, "insert into alerts", NULL);
	while ((res = PQgetResult(s->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (!err)
				err = step_failed(s, "insert into alerts", res);
		} else if (first && PQntuples(res) > 0) {
			if (s->part_fenced == 0) {
				s->fenced_shard = atoi(PQgetvalue(res, 0, 0));
				s->fenced_epoch = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
				s->fenced_now = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
			}
			s->part_fenced += (uint64_t)PQntuples(res);
		}
		first = 0;
		PQclear(res);
	}
	return err;
}

/* The batch's alert transitions; `rowwise`: each behind a savepoint, and
 * one refused for its data again with its text escaped (held if refused
 * even so); else all at once (write_alerts_batched). Returns 0, or as
 * step_failed(). */
static int
write_alerts(struct store *s, const struct store_batch *b, bool rowwise)
{
	if (!rowwise)
		return write_alerts_batched(s, b);
	for (size_t i = 0; i < b->nalerts; i++) {
		int err;

		if ((err = exec_sql(s, "SAVEPOINT alert", NULL)) < 0)
			return err;
		err = write_alert(s, &b->alerts[i], false);
		if (err == -EBADMSG) {
			log_limited(&s->row_rl, LOG_LEVEL_WARNING,
				    "alert %s refused for its text (SQLSTATE %s %s);"
				    " stored with the text escaped",
				    b->alerts[i].t.a.alert_id, s->err.sqlstate, s->err.message);
			err = exec_sql(s, "ROLLBACK TO SAVEPOINT alert", NULL);
			if (!err)
				err = write_alert(s, &b->alerts[i], true);
		}
		if (err)
			return err == -EBADMSG ? -EAGAIN : err;
	}
	return 0;
}

/* The spool checkpoint at the batch's end, in the transaction under way.
 * 0, or as step_failed(). */
static int
write_checkpoint(struct store *s, const struct store_batch *b)
{
	char pos[24];
	const char *vals[3] = { s->instance, s->spool_id, pos };

	snprintf(pos, sizeof(pos), "%" PRIu64, b->end_pos);
	return exec_params(
		s,
		"INSERT INTO spool_checkpoint (instance, spool_id, position) VALUES ($1, $2, $3)"
		" ON CONFLICT (instance) DO UPDATE SET spool_id = excluded.spool_id,"
		" position = CASE WHEN spool_checkpoint.spool_id = excluded.spool_id"
		"   THEN greatest(spool_checkpoint.position, excluded.position)"
		"   ELSE excluded.position END, updated_at = now()",
		3, vals, NULL, NULL, "checkpoint");
}

/* Commits; the batch's last part also moves the checkpoint in the same
 * transaction. (Parts before it commit without: their rows are keyed, so
 * a replay of the whole batch after a crash adds nothing twice.) 0, or
 * as step_failed(). */
static int
commit_part(struct store *s, const struct store_batch *b, bool last)
{
	int err = last ? write_checkpoint(s, b) : 0;

	return err ? err : exec_sql(s, "COMMIT", NULL);
}

static void
rollback(struct store *s)
{
	if (PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* The topic an event came on (for a row turned reject). */
static void
event_topic(struct store *s, const struct event *ev, char *buf, size_t len)
{
	switch (ev->type) {
	case EVENT_GATE:
		topics_build(buf, len, s->topic_root, TOPIC_GATE_EVENT, ev->site, ev->gate);
		break;
	case EVENT_STATUS:
		topics_build(buf, len, s->topic_root, TOPIC_GATE_STATUS, ev->site, ev->gate);
		break;
	case EVENT_DISINFECTION:
		topics_build(buf, len, s->topic_root, TOPIC_DISINFECTION, ev->site, ev->zone);
		break;
	case EVENT_HOTLINE:
		topics_build(buf, len, s->topic_root, TOPIC_HOTLINE, ev->site, NULL);
		break;
	case EVENT_CHECK:
		topics_build(buf, len, s->topic_root, TOPIC_CHECK, ev->site, ev->household);
		break;
	case EVENT_ACK: topics_build(buf, len, s->topic_root, TOPIC_ACK, ev->site, NULL); break;
	case EVENT_NEED: topics_build(buf, len, s->topic_root, TOPIC_NEED, ev->site, NULL); break;
	case EVENT_CALL:
		topics_build(buf, len, s->topic_root, TOPIC_CALL, ev->site, ev->household);
		break;
	case EVENT_DROPOFF:
		topics_build(buf, len, s->topic_root, TOPIC_DROPOFF, ev->site, NULL);
		break;
	}
}

/* Turns a row PostgreSQL refused for its data (the error in s->err) into
 * a reject: reason store_failed, the SQLSTATE and message as detail, the
 * row's fields as payload. Logged rate-limited (a batch may hold
 * thousands), counted in rows_rejected once committed. Returns 0, or as
 * insert_reject_surely(). */
static int
reject_row(struct store *s, const struct event *ev, const struct table_desc *t,
	   const struct table_row *row)
{
	struct store_reject r = { .received_us = ev->received_us, .reason = "store_failed" };
	char payload[2048], topic[256];
	size_t n = 0;
	int err;

	for (int c = 0; c < t->ncols && n < sizeof(payload); c++)
		n += (size_t)snprintf(payload + n, sizeof(payload) - n, "%s%s", c ? "\t" : "",
				      row->v[c] ? row->v[c] : "\\N");
	event_topic(s, ev, topic, sizeof(topic));
	snprintf(r.key, sizeof(r.key), "row:%s", ev->key);
	{
		char msg[91];

		snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(msg) - 1, s->err.message);
		normalize_utf8_trim(msg);
		snprintf(r.detail, sizeof(r.detail), "PostgreSQL refused the row: %.5s %s",
			 s->err.sqlstate, msg);
	}
	normalize_utf8_trim(r.detail);
	r.topic = topic;
	r.payload = (uint8_t *)payload;
	r.payload_len = n < sizeof(payload) ? n : sizeof(payload) - 1;
	r.orig_len = r.payload_len;
	count_error(s, s->err.sqlstate);
	log_limited(&s->row_rl, LOG_LEVEL_ERR, "event %s: %s; stored in rejects as store_failed",
		    ev->key, r.detail);
	err = insert_reject_surely(s, &r);
	if (!err)
		s->part_rejected++;
	return err;
}

/* A row that was not inserted for its key (write_row): through the
 * staging table, stored under a derived key when the key holds other
 * content (tables.h, insert_sql). 0, or as step_failed(). */
static int
derive_row(struct store *s, const struct table_desc *t, const struct table_row *row)
{
	char sql[1024], params[256], what[64];
	size_t n = 0;
	int err;

	for (int c = 0; c < t->ncols; c++)
		n += (size_t)snprintf(params + n, sizeof(params) - n, "%s$%d", c ? ", " : "",
				      c + 1);
	snprintf(sql, sizeof(sql), "INSERT INTO stage_%s (%s) VALUES (%s)", t->table, t->columns,
		 params);
	snprintf(what, sizeof(what), "INSERT INTO stage_%s", t->table);
	if ((err = exec_params(s, sql, t->ncols, row->v, NULL, NULL, what)) < 0)
		return err;
	snprintf(what, sizeof(what), "INSERT INTO %s", t->table);
	if ((err = exec_staged(s, t, what)) < 0)
		return err;
	snprintf(sql, sizeof(sql), "DELETE FROM stage_%s", t->table);
	return exec_sql(s, sql, NULL);
}

/* One event row behind a savepoint; one refused for its data becomes a
 * reject, one whose key is taken goes to derive_row(). Returns 0, or as
 * step_failed() for anything else (the pass ends and the batch is held:
 * no row becomes a reject for it). */
static int
write_row(struct store *s, const struct event *ev)
{
	const struct table_desc *t = tables_for(ev->type);
	struct table_row row;
	PGresult *res;
	char what[64];
	int err;

	tables_row(ev, &row);
	snprintf(what, sizeof(what), "INSERT INTO %s", t->table);
	if ((err = exec_sql(s, "SAVEPOINT row", NULL)) < 0)
		return err;
	if (stopping(s))
		return step_refused(s, what);
	res = PQexecParams(s->conn, t->insert_one_sql, t->ncols, NULL, row.v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		err = step_failed(s, what, res);
	} else if (strcmp(PQcmdTuples(res), "0") == 0) {
		/* The key is taken (the hotline's statement counts the calls
		 * its new steps fold into: 0 as well). */
		PQclear(res);
		return derive_row(s, t, &row);
	}
	PQclear(res);
	if (err != -EBADMSG)
		return err;
	err = exec_sql(s, "ROLLBACK TO SAVEPOINT row", NULL);
	return err ? err : reject_row(s, ev, t, &row);
}

/* Writes the events [from, to) of the batch in one transaction, the last
 * part with the batch's rejects, alerts and checkpoint. `rowwise`: each
 * row behind a savepoint, a row refused for its data turned reject (after
 * the whole part failed on its data). Returns 0; -EBADMSG when the part
 * (not rowwise) failed on its data; -EAGAIN (held), -ENOTCONN, -ENOMEM. */
static int
write_part(struct store *s, const struct store_batch *b, size_t from, size_t to, bool last,
	   bool rowwise)
{
	int err = exec_sql(s, "BEGIN", NULL);

	s->part_rejected = 0;
	s->part_fenced = 0;
	memset(s->part_reused, 0, sizeof(s->part_reused));
	s->part_reused_key[0] = '\0';
	for (size_t i = from; rowwise && !err && i < to; i++)
		err = write_row(s, &b->events[i]);
	if (!rowwise && !err && (err = write_events(s, b, from, to)) < 0)
		s->err.in_events = true;
	for (size_t i = 0; last && !err && i < b->nrejects; i++)
		err = rowwise ? insert_reject_surely(s, &b->rejects[i]) :
				insert_reject(s, &b->rejects[i], false);
	if (last && !err && !rowwise && has_fenced(b)) {
		/* the checkpoint first: the fence and the COMMIT go together */
		err = write_checkpoint(s, b);
		if (!err)
			err = write_alerts_fenced(s, b);
	} else {
		if (last && !err)
			err = write_alerts(s, b, rowwise);
		if (!err)
			err = commit_part(s, b, last);
	}
	if (err) {
		rollback(s);
		/* A row pass that fails on data (a reject or alert refused even
		 * escaped) is not retried row by row: it holds. */
		return rowwise && err == -EBADMSG ? -EAGAIN : err;
	}
	if (s->part_fenced) {
		atomic_fetch_add(&s->alert_rows_fenced, s->part_fenced);
		log_limited(
			&s->fence_rl, LOG_LEVEL_WARNING,
			"%" PRIu64 " alert rows not written: shard %d's lease is at epoch %" PRId64
			", they were made under epoch %" PRId64 " (another instance took it over)",
			s->part_fenced, s->fenced_shard, s->fenced_now, s->fenced_epoch);
	}
	if (s->part_rejected) {
		atomic_fetch_add(&s->rows_rejected, s->part_rejected);
		log_warn("%" PRIu64 " of %zu rows refused for their data, stored in rejects as"
			 " store_failed",
			 s->part_rejected, to - from);
	}
	if (s->part_reused_key[0]) {
		uint64_t n = 0;

		pthread_mutex_lock(&s->lock);
		for (int i = 0; i <= EVENT_TYPES; i++) {
			s->reused_by_type[i] += s->part_reused[i];
			n += s->part_reused[i];
		}
		pthread_mutex_unlock(&s->lock);
		log_limited(&s->reuse_rl, LOG_LEVEL_WARNING,
			    "%" PRIu64 " event(s) came with a record id their device had used for"
			    " other content (a reset or replaced terminal?): stored under derived"
			    " keys, e.g. %s",
			    n, s->part_reused_key);
	}
	return 0;
}

/* Writes the batch: whole, or in parts of s->part_events events after a
 * statement timeout; a part that fails on its data again row by row. A
 * batch retried after a failure resumes after its committed parts.
 * Returns 0, or -ENOTCONN, -EAGAIN (held: the error in s->err), -ENOMEM. */
static int
write_batch_any(struct store *s, const struct store_batch *b)
{
	size_t from = 0;
	int err;

	if (s->resume_batch == b && s->resume_end == b->end_pos)
		from = s->resume_from;
	for (;;) {
		size_t to = b->nevents;
		bool last;

		if (s->part_events && to - from > s->part_events)
			to = from + s->part_events;
		last = to == b->nevents;
		err = write_part(s, b, from, to, last, false);
		if (err == -EBADMSG) {
			log_limited(&s->row_rl, LOG_LEVEL_WARNING,
				    "batch of %zu events refused for its data (SQLSTATE %s %s, %s);"
				    " writing it row by row",
				    to - from, s->err.sqlstate, s->err.message, s->err.what);
			err = write_part(s, b, from, to, last, true);
		}
		if (err == -EAGAIN && is_statement_timeout(s->err.sqlstate) && s->err.in_events &&
		    to - from > 1) {
			/* Too big for statement_timeout, perhaps: halve the
			 * parts and try again at once. When the cause is a lock
			 * or a slow server, this ends at one event per part and
			 * the batch is held like any other. */
			if (!s->part_events)
				log_warn("statement timeout on a part of %zu events: writing"
					 " batches in smaller parts",
					 to - from);
			s->part_events = (to - from) / 2;
			continue;
		}
		if (err) {
			s->resume_batch = b;
			s->resume_end = b->end_pos;
			s->resume_from = from;
			return err;
		}
		/* A part went through: try twice as many next. */
		s->part_events *= 2;
		if (last)
			break;
		from = to;
	}
	s->resume_batch = NULL;
	if (s->part_events && s->part_events >= b->nevents) {
		s->part_events = 0;
		log_notice("writing whole batches again");
	}
	return 0;
}

/* ---- states: each change logged once ---- */

/* Writes go through (a connection from a down state, or a batch committed
 * while held): logs the change, resets the backoff. */
static void
enter_up(struct store *s)
{
	if (s->state == DB_HELD)
		log_notice("PostgreSQL takes writes again after %" PRId64 " s held by SQLSTATE %s"
			   " (%" PRIu64 " attempts)",
			   (clocks_mono_us() - s->held_since_us) / 1000000, s->held_sqlstate,
			   s->held_attempts);
	else if (s->state != DB_UP)
		log_notice("PostgreSQL connected (schema version %d)", s->schema_version);
	s->state = DB_UP;
	s->unreachable_logged = false;
	backoff_reset(&s->backoff);
	atomic_store(&s->writes_held, 0);
	atomic_store(&s->db_up, 1);
}

/* PostgreSQL cannot be reached (`lost`: the connection broke under a
 * batch). Logged once per outage: the loss, and the first failed attempt
 * to connect (also after a loss). */
static void
enter_down(struct store *s, bool lost)
{
	if (lost) {
		log_warn("PostgreSQL connection lost (%s); the batch stays in the spool and is"
			 " retried",
			 s->err.message);
		s->unreachable_logged = false;
	} else if (s->state != DB_DOWN || !s->unreachable_logged) {
		log_warn("PostgreSQL unreachable, retrying with backoff up to %d s: %s",
			 BACKOFF_MAX_MS / 1000, s->err.message);
		s->unreachable_logged = true;
	}
	s->state = DB_DOWN;
	atomic_store(&s->writes_held, 0);
	atomic_store(&s->db_up, 0);
}

/* PostgreSQL answers but refuses the batch (`b`, or NULL: the session's
 * set-up) for a reason that is not the data (s->err). Counts the attempt;
 * logs when the state changes: first refusal, or another SQLSTATE. */
static void
enter_held(struct store *s, const struct store_batch *b)
{
	const char *state = s->err.sqlstate[0] ? s->err.sqlstate : "-----";

	count_error(s, s->err.sqlstate);
	if (s->state != DB_HELD) {
		s->held_since_us = clocks_mono_us();
		s->held_attempts = 0;
	}
	s->held_attempts++;
	if (s->state != DB_HELD || strcmp(s->held_sqlstate, s->err.sqlstate) != 0) {
		char batch[64] = "";

		if (b)
			snprintf(batch, sizeof(batch), "the batch (%zu rows) stays in the spool, ",
				 store_batch_rows(b));
		log_err("PostgreSQL refuses writes: SQLSTATE %s %s (%s); %sretrying with backoff"
			" up to %d s",
			state, s->err.message, s->err.what, batch, BACKOFF_MAX_MS / 1000);
	}
	s->state = DB_HELD;
	pthread_mutex_lock(&s->lock);
	snprintf(s->held_sqlstate, sizeof(s->held_sqlstate), "%s", s->err.sqlstate);
	{
		char msg[131];

		snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(msg) - 1, s->err.message);
		normalize_utf8_trim(msg);
		snprintf(s->held_reason, sizeof(s->held_reason), "%s (%.63s)", msg, s->err.what);
		normalize_utf8_trim(s->held_reason);
	}
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->writes_held, 1);
	atomic_store(&s->db_up, 1);
}

/* Sleeps for the backoff on CLOCK_MONOTONIC (s->cond is created with that
 * clock), or until store_destroy() asks the thread to quit; then doubles
 * the backoff, up to BACKOFF_MAX_MS. */
static void
wait_backoff(struct store *s)
{
	struct timespec until;
	int64_t ms = backoff_next(&s->backoff);

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	/* A batch handed in meanwhile wakes us too: wait on. */
	while (!s->quit && pthread_cond_timedwait(&s->cond, &s->lock, &until) == 0)
		;
	pthread_mutex_unlock(&s->lock);
}

/* Closes the connection and forgets its cancel handle. */
static void
drop_connection(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	PQfreeCancel(s->cancel);
	s->cancel = NULL;
	pthread_mutex_unlock(&s->lock);
	PQfinish(s->conn);
	s->conn = NULL;
}

/* After a committed batch: the statistics, and the batch back to the
 * main loop. */
static void
batch_done(struct store *s, struct store_batch *b, int64_t t0)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < b->nevents; i++)
		s->rows_by_type[b->events[i].type]++;
	histogram_observe(&s->batch_rows, (double)store_batch_rows(b));
	histogram_observe(&s->batch_seconds, (double)(clocks_mono_us() - t0) / 1e6);
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

/* The store thread: connects, writes each batch handed in, and on a
 * failure goes down (reconnect) or holds (new session, same batch), each
 * after the backoff; see the top of this file. Runs until store_destroy(). */
static void *
store_thread(void *arg)
{
	struct store *s = arg;

	backoff_init(&s->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	s->state = DB_START;
	for (;;) {
		struct store_batch *b;
		int64_t t0;
		int err, quit;

		pthread_mutex_lock(&s->lock);
		while (!s->quit && s->conn && !s->pending && s->state != DB_HELD)
			pthread_cond_wait(&s->cond, &s->lock);
		quit = s->quit;
		b = s->pending;
		pthread_mutex_unlock(&s->lock);
		if (quit)
			break;

		if (!s->conn) {
			err = connect_db(s);
			if (err == 0) {
				if (s->state == DB_HELD)
					log_debug("PostgreSQL reconnected (schema version %d)",
						  s->schema_version);
				else
					enter_up(s);
				continue;
			}
			if (err == -ENOTCONN)
				enter_down(s, false);
			else
				enter_held(s, NULL);
			wait_backoff(s);
			continue;
		}
		if (!b) {
			/* Held, but the new session works and nothing waits. */
			enter_up(s);
			continue;
		}
		t0 = clocks_mono_us();
		err = write_batch_any(s, b);
		if (err == 0) {
			enter_up(s);
			batch_done(s, b, t0);
			continue;
		}
		if (err == -ECANCELED)
			break; /* stopping: the batch stays in the spool */
		if (err == -ENOTCONN) {
			enter_down(s, true);
		} else {
			/* A new session after the backoff: staging tables LIKE
			 * the tables as they are then, role settings as they are
			 * then. */
			enter_held(s, b);
		}
		drop_connection(s);
		wait_backoff(s);
	}
	if (s->conn)
		drop_connection(s);
	return NULL;
}

int
store_create(const struct store_options *opt, int done_fd, struct store **ret_store)
{
	struct store *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	int err;

	if (!s)
		return -ENOMEM;
	static const double rows_bounds[HIST_BUCKETS] = { 1,	10,   50,   100,   250,	  500,
							  1000, 2000, 5000, 10000, 50000, 100000 };
	static const double sec_bounds[HIST_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
							 0.1,	0.25,	0.5,   1,    2.5,   10 };

	/* wait_backoff() waits for a CLOCK_MONOTONIC deadline: the condition
	 * variable must measure it on that clock (the default is
	 * CLOCK_REALTIME, where such a deadline is always in the past). */
	if ((err = pthread_condattr_init(&ca)) != 0) {
		free(s);
		return -err;
	}
	if ((err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
		err = pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err) {
		free(s);
		return -err;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->row_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	s->reuse_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	s->fence_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
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
		char err[256];

		pthread_mutex_lock(&s->lock);
		s->quit = 1;
		/* A statement that waits (a lock held in PostgreSQL, a stalled
		 * server) would hold the stop past shutdown_timeout. */
		if (s->cancel && !PQcancel(s->cancel, err, sizeof(err)))
			log_warn("cannot cancel the PostgreSQL statement in flight: %s", err);
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
	memcpy(ret->reused_by_type, s->reused_by_type, sizeof(ret->reused_by_type));
	ret->batch_rows = s->batch_rows;
	ret->batch_seconds = s->batch_seconds;
	pthread_mutex_unlock(&s->lock);
	ret->have_db_checkpoint = atomic_load(&s->have_db_checkpoint);
	ret->connect_attempts = atomic_load(&s->connect_attempts);
	ret->rows_rejected = atomic_load(&s->rows_rejected);
	ret->alert_rows_fenced = atomic_load(&s->alert_rows_fenced);
	pthread_mutex_lock(&s->lock);
	ret->writes_held = atomic_load(&s->writes_held);
	memcpy(ret->held_sqlstate, s->held_sqlstate, sizeof(ret->held_sqlstate));
	memcpy(ret->held_reason, s->held_reason, sizeof(ret->held_reason));
	memcpy(ret->write_errors, s->write_errors, sizeof(ret->write_errors));
	ret->nwrite_errors = s->nwrite_errors;
	ret->write_errors_other = s->write_errors_other;
	pthread_mutex_unlock(&s->lock);
}

void
store_stats_print(const struct store_stats *ss, void *stream)
{
	FILE *f = stream;

	fprintf(f,
		"# HELP cordon_postgres_connect_attempts_total Connections to PostgreSQL tried,"
		" successful or not.\n# TYPE cordon_postgres_connect_attempts_total counter\n"
		"cordon_postgres_connect_attempts_total %llu\n",
		(unsigned long long)ss->connect_attempts);
	fprintf(f,
		"# HELP cordon_postgres_writes_held 1 while PostgreSQL refuses writes for a"
		" reason that is not the data (privilege, schema, timeout, read-only, ...):"
		" the batch stays in the spool and is retried.\n"
		"# TYPE cordon_postgres_writes_held gauge\ncordon_postgres_writes_held %d\n",
		ss->writes_held);
	fprintf(f,
		"# HELP cordon_postgres_write_errors_total Failed writes by SQLSTATE: each"
		" attempt of a held batch, each row refused for its data.\n"
		"# TYPE cordon_postgres_write_errors_total counter\n");
	for (size_t i = 0; i < ss->nwrite_errors; i++)
		fprintf(f, "cordon_postgres_write_errors_total{sqlstate=\"%s\"} %llu\n",
			ss->write_errors[i].sqlstate[0] ? ss->write_errors[i].sqlstate : "none",
			(unsigned long long)ss->write_errors[i].count);
	if (ss->write_errors_other)
		fprintf(f, "cordon_postgres_write_errors_total{sqlstate=\"other\"} %llu\n",
			(unsigned long long)ss->write_errors_other);
	fprintf(f,
		"# HELP cordon_store_rows_rejected_total Event rows PostgreSQL refused for their"
		" data (SQLSTATE class 22 or 23), stored in rejects as store_failed.\n"
		"# TYPE cordon_store_rows_rejected_total counter\n"
		"cordon_store_rows_rejected_total %llu\n",
		(unsigned long long)ss->rows_rejected);
	fprintf(f,
		"# HELP cordon_cluster_alert_rows_fenced_total Alert rows (alerts,"
		" alert_transitions) not written because their shard's epoch had moved on:"
		" another instance took the shard over (docs/scaling.md, Fencing).\n"
		"# TYPE cordon_cluster_alert_rows_fenced_total counter\n"
		"cordon_cluster_alert_rows_fenced_total %llu\n",
		(unsigned long long)ss->alert_rows_fenced);
	fprintf(f,
		"# HELP cordon_events_key_reused_total Events that came with a record id their"
		" device had used for other content (a reset, updated or replaced terminal):"
		" stored under a derived key <key>~<12 hex digits>, listed in event_keys_reused.\n"
		"# TYPE cordon_events_key_reused_total counter\n");
	for (int t = 1; t <= EVENT_TYPES; t++)
		fprintf(f, "cordon_events_key_reused_total{type=\"%s\"} %llu\n",
			normalize_type_name((enum event_type)t),
			(unsigned long long)ss->reused_by_type[t]);
}

const char *
store_stats_db_text(const struct store_stats *ss)
{
	return !ss->db_up ? "down" : ss->writes_held ? "refusing writes" : "up";
}
