/* cluster.c - the cluster thread: this instance's heartbeat and its shard
 * leases in PostgreSQL (cluster.h; docs/scaling.md, "Leases in
 * PostgreSQL" and "Fencing"; tables: sql/0012_cluster.sql).
 *
 * A thread of its own with its own connection, for the reason the
 * retention and register threads have theirs: nobody waits on it. The
 * main loop reads a copy of the view (cluster_view()) when the wake
 * eventfd says it changed, and its calls (cluster_released(),
 * cluster_session_lost(), cluster_stop_begin()) only set flags under a
 * short lock and kick the thread.
 *
 * A turn, every lease_time / 3 (sooner on a request, a NOTIFY
 * cordon_cluster from another instance, or when a lease it could take
 * expires):
 *   1. the leases the main loop is done with are released (owner NULL,
 *      expires_at now, history 'released'), each one statement;
 *   2. one statement writes the heartbeat and renews every lease held
 *      (only where owner and epoch are still ours); a lease that does not
 *      come back is lost (history 'lost' unless its taker closed it);
 *   3. the leases and the instances alive are read, cluster_plan()
 *      decides what to take and what to offer back, and each acquisition
 *      is one short transaction (lock the row, take it, close the previous
 *      holder's history row at its expiry, open ours);
 *   4. the view is published.
 * Every statement is parameterised, sent without blocking and waited for
 * until a deadline (lease_time / 3); the session also has statement,
 * lock and idle-in-transaction timeouts, so a paused instance holding a
 * row lock holds it for at most that long.
 *
 * db_ok turns false only when a turn failed on a new connection too: a
 * turn that fails on a connection that worked before (killed while this
 * process was paused, a restart of PostgreSQL) is run again at once on a
 * new one, so a paused instance that wakes up finds out what it lost
 * before it could believe PostgreSQL away (cluster_may_act()).
 *
 * Expired leases of other instances are taken only once this instance has
 * been connected for a whole lease_time (and not paused longer than that
 * since): after an outage of PostgreSQL every lease has expired on its
 * clock, and each owner must have had the time to renew its own before
 * anyone takes them. Free shards are taken at once, after a short join
 * delay that lets instances started together see each other's heartbeat. */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backoff.h"
#include "clocks.h"
#include "db.h"
#include "log.h"

#include <xxhash.h>

#ifndef CORDON_VERSION
#define CORDON_VERSION "0"
#endif

#define CHANNEL "cordon_cluster"
/* A shard lost to a session takeover is not taken again sooner (ms). */
#define RETAKE_AFTER_MS 1500
#define BACKOFF_MIN_MS 500
/* Until the schema is there (the store migrates at start), look again. */
#define SCHEMA_WAIT_MS 1000
/* A NOTIFY from another instance runs a turn at most this often. */
#define NOTIFY_GAP_MS 100
/* Shards RELEASING at once, at most (docs/scaling.md). */
#define OFFER_MAX 4
/* Instances alive read per turn, at most. */
#define MAX_INSTANCES 1024
/* A turn that finds a lease it could take expiring waits this much past
 * its expiry (PostgreSQL's clock and ours tick at about the same rate). */
#define EXPIRY_MARGIN_MS 50
/* cluster_destroy() after cluster_stop_begin(): the stopped_at write. */
#define FINAL_WRITE_MS 1000

/* A lease this process holds. */
struct held {
	int64_t epoch;	     /* 0: none */
	int64_t deadline_ms; /* CLOCK_MONOTONIC: surely ours until then */
	bool releasing;	     /* offered back: RELEASING in the view */
	bool release_now;    /* the main loop is done with it */
};

struct cluster {
	/* What it keeps of the config. */
	char *conninfo, *name, *metrics;
	int nshards;
	int64_t lease_ms, stmt_ms;
	char host[256];
	int wake_fd; /* the main loop's */
	int kick_fd; /* ours: a request, or quit */
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;
	/* Under lock. */
	struct cluster_view view;
	bool req_lost[CLUSTER_MAX_SHARDS], req_released[CLUSTER_MAX_SHARDS];
	/* The epoch each request is about (0: whatever the lease held). */
	int64_t req_lost_epoch[CLUSTER_MAX_SHARDS], req_released_epoch[CLUSTER_MAX_SHARDS];
	bool pending; /* a request not yet applied by the thread */
	bool stop, quit;
	char fatal[512]; /* written once, while it is "" */

	/* The thread's own. */
	PGconn *conn;
	struct held held[CLUSTER_MAX_SHARDS];
	/* Leases whose session was taken over (cluster_session_lost), by
	 * epoch, to be ended in PostgreSQL at the next turn (0: none). */
	int64_t lost_epoch[CLUSTER_MAX_SHARDS];
	/* CLOCK_MONOTONIC ms before which a shard whose session was taken
	 * over is not taken again (0: none): ejabberd orders two
	 * registrations of a session within one wall-clock second at random
	 * (docs/scaling.md, "The broker"), so an immediate retake could bounce
	 * the session between its two holders. */
	int64_t retake_after_ms[CLUSTER_MAX_SHARDS];
	char owner[CLUSTER_MAX_SHARDS][128]; /* as last read, "" free */
	struct cluster_view scratch;
	bool stopping;	       /* stop applied */
	bool stopped;	       /* stopped_at written */
	bool heartbeat_done;   /* the first heartbeat of this process */
	bool announced_stop;   /* NOTIFY 'stopping' sent */
	bool reclaim;	       /* the first plan may take this name's leases */
	bool reclaim_checked;  /* the previous process of the name looked at */
	bool db_ok, finishing; /* finishing: quit does not cut a statement */
	bool joined;	       /* a turn past the join delay ran (cluster_view.joined) */
	int alive, fair;
	int64_t take_after_ms; /* the join delay: no acquisition before */
	int64_t settled_ms;    /* no expired lease of another before */
	int64_t last_turn_ms, next_turn_ms;
	uint64_t acquired, released, lost, failures;
	int64_t renewed_ms;
	unsigned seed; /* from the name: where the search for free shards starts */
	bool schema_warned, failing;
	char last_err[256];
	struct log_ratelimit acquire_rl, fail_rl;
};

/* ---------------------------------------------------------------- helpers */

static void
kick(struct cluster *c)
{
	if (eventfd_write(c->kick_fd, 1) < 0)
		log_err("cluster: cannot wake the cluster thread: %s", strerror(errno));
}

static void
wake_main(struct cluster *c)
{
	if (c->wake_fd >= 0 && eventfd_write(c->wake_fd, 1) < 0)
		log_err("cluster: cannot wake the main loop: %s", strerror(errno));
}

static bool
quitting(struct cluster *c)
{
	bool q;

	pthread_mutex_lock(&c->lock);
	q = c->quit;
	pthread_mutex_unlock(&c->lock);
	return q;
}

static void
drop_conn(struct cluster *c)
{
	PQfinish(c->conn);
	c->conn = NULL;
}

/* Waits until the connection's socket is ready for `events` or
 * `deadline_ms`; a quit (unless finishing) ends the wait too. Returns 0
 * when ready, -ETIMEDOUT, -ECANCELED (quit) or -EIO. */
static int
wait_socket(struct cluster *c, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = PQsocket(c->conn), .events = events },
			{ .fd = c->kick_fd, .events = POLLIN },
		};
		int64_t left = deadline_ms - clocks_mono_ms();
		int n;

		if (fds[0].fd < 0)
			return -EIO;
		if (!c->finishing && quitting(c))
			return -ECANCELED;
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(fds, c->finishing ? 1 : 2, (int)(left > 1000 ? 1000 : left));
		if (n < 0 && errno != EINTR)
			return -EIO;
		if (n > 0 && fds[0].revents)
			return 0;
		if (n > 0 && fds[1].revents) {
			eventfd_t v;

			/* A quit is seen above; a request stays pending under
			 * the lock for the idle wait (wait_turn). */
			(void)eventfd_read(c->kick_fd, &v);
		}
	}
}

/* Runs one parameterised statement, waiting for its result at most
 * timeout_ms. Returns the result (PQclear it; its status may be an error)
 * or NULL with the reason in err, the connection then dropped when it is
 * in no state to go on (no answer, quit, lost). */
static PGresult *
exec_for(struct cluster *c, int64_t timeout_ms, const char *sql, int nparams,
	 const char *const *params, char *err, size_t errlen)
{
	int64_t deadline = clocks_mono_ms() + timeout_ms;
	PGresult *first = NULL, *r;
	int rc;

	if (!PQsendQueryParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
		db_error_text(c->conn, NULL, err, errlen);
		goto lost;
	}
	while ((rc = PQflush(c->conn)) != 0) {
		if (rc < 0 || wait_socket(c, POLLOUT, deadline) < 0) {
			snprintf(err, errlen, "cannot send a statement within %" PRId64 " ms",
				 timeout_ms);
			goto lost;
		}
	}
	for (;;) {
		while (PQisBusy(c->conn)) {
			rc = wait_socket(c, POLLIN, deadline);
			if (rc == -ETIMEDOUT) {
				snprintf(err, errlen, "no answer within %" PRId64 " ms",
					 timeout_ms);
				goto lost;
			}
			if (rc == -ECANCELED) {
				snprintf(err, errlen, "stopped");
				goto lost;
			}
			if (rc < 0 || !PQconsumeInput(c->conn)) {
				db_error_text(c->conn, NULL, err, errlen);
				goto lost;
			}
		}
		r = PQgetResult(c->conn);
		if (!r)
			break;
		if (first)
			PQclear(r);
		else
			first = r;
	}
	if (!first) {
		db_error_text(c->conn, NULL, err, errlen);
		goto lost;
	}
	if (PQresultStatus(first) != PGRES_COMMAND_OK && PQresultStatus(first) != PGRES_TUPLES_OK)
		db_error_text(c->conn, first, err, errlen);
	return first;
lost:
	PQclear(first);
	drop_conn(c);
	return NULL;
}

static PGresult *
exec(struct cluster *c, const char *sql, int nparams, const char *const *params, char *err,
     size_t errlen)
{
	return exec_for(c, c->stmt_ms, sql, nparams, params, err, errlen);
}

static bool
res_ok(const PGresult *res)
{
	return res &&
		(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);
}

/* A statement whose rows are not needed: 0, or -1 with the reason. */
static int
run(struct cluster *c, const char *sql, int nparams, const char *const *params, char *err,
    size_t errlen)
{
	PGresult *res = exec(c, sql, nparams, params, err, errlen);
	int ok = res_ok(res);

	PQclear(res);
	return ok ? 0 : -1;
}

/* The count and the array of a statement's parameters. */
// clang-format off
#define PARAMS(...) \
	(int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
	(const char *const[]){ __VA_ARGS__ }
// clang-format on

static void set_fatal(struct cluster *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
set_fatal(struct cluster *c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->lock);
	if (!c->fatal[0]) {
		va_start(ap, fmt);
		vsnprintf(c->fatal, sizeof(c->fatal), fmt, ap);
		va_end(ap);
		c->view.generation++;
		log_err("cluster: %s", c->fatal);
	}
	pthread_mutex_unlock(&c->lock);
	wake_main(c);
}

/* ---------------------------------------------------------------- connecting */

/* Whether the previous process of this name (its heartbeat row) is gone,
 * so that the leases under the name are free to take at once: no row, a
 * clean stop, a heartbeat older than its lease, or a pid of this host that
 * no longer runs. */
static int
check_previous(struct cluster *c, char *err, size_t errlen)
{
	char lease[24];
	PGresult *res;
	const char *host;
	int pid;
	bool alive;

	snprintf(lease, sizeof(lease), "%" PRId64, c->lease_ms);
	res = exec(c,
		   "SELECT host, pid, stopped_at IS NULL"
		   " AND seen_at > clock_timestamp() - lease_ms * interval '1 millisecond'"
		   " FROM cluster_instances WHERE instance = $1",
		   PARAMS(c->name), err, errlen);
	if (!res_ok(res)) {
		PQclear(res);
		return -1;
	}
	c->reclaim = true;
	if (PQntuples(res) == 1) {
		host = PQgetvalue(res, 0, 0);
		pid = atoi(PQgetvalue(res, 0, 1));
		alive = PQgetvalue(res, 0, 2)[0] == 't';
		if (alive &&
		    (strcmp(host, c->host) != 0 || pid == getpid() || kill(pid, 0) == 0 ||
		     errno != ESRCH)) {
			log_err("cluster: another process named %s is alive (host %s, pid %d):"
				" every instance needs its own [mqtt] client_id; its leases are"
				" left to it",
				c->name, host, pid);
			c->reclaim = false;
		}
	}
	PQclear(res);
	c->reclaim_checked = true;
	return 0;
}

/* Connects, sets the session's limits, LISTENs, checks the schema and the
 * number of shards and makes the lease rows. 0, 1 (the schema is not
 * there yet), 2 (fatal: set) or -1 with the reason. */
static int
connect_db(struct cluster *c, char *err, size_t errlen)
{
	char stmt[24], lock[24], idle[24], shards[16];
	PGresult *res;
	int version, theirs;

	c->conn = db_connect(c->conninfo, "cordond-cluster");
	if (!c->conn) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		db_error_text(c->conn, NULL, err, errlen);
		goto fail;
	}
	if (PQsetnonblocking(c->conn, 1) != 0) {
		snprintf(err, errlen, "cannot make the connection non-blocking");
		goto fail;
	}
	/* A statement that hangs, a lock held by a paused instance, a
	 * transaction left open by one: each bounded on the server too. */
	snprintf(stmt, sizeof(stmt), "%" PRId64, c->stmt_ms);
	snprintf(lock, sizeof(lock), "%" PRId64, c->stmt_ms / 2);
	snprintf(idle, sizeof(idle), "%" PRId64, c->stmt_ms);
	if (run(c,
		"SELECT set_config('statement_timeout', $1, false),"
		" set_config('lock_timeout', $2, false),"
		" set_config('idle_in_transaction_session_timeout', $3, false)",
		PARAMS(stmt, lock, idle), err, errlen) < 0)
		goto fail;
	res = exec(c, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL, err, errlen);
	if (!res_ok(res) || PQntuples(res) != 1) {
		PQclear(res);
		goto fail;
	}
	version = PQgetvalue(res, 0, 0)[0] == 't' ? 1 : 0;
	PQclear(res);
	if (version) {
		res = exec(c, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, err,
			   errlen);
		if (!res_ok(res) || PQntuples(res) != 1) {
			PQclear(res);
			goto fail;
		}
		version = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	if (version < db_latest_version()) {
		if (!c->schema_warned)
			log_info("cluster: waiting for the schema (version %d, this build needs %d:"
				 " cordond's store or cordonctl migrate applies it)",
				 version, db_latest_version());
		c->schema_warned = true;
		drop_conn(c);
		return 1;
	}
	/* The first instance writes the number; every other must have it. */
	snprintf(shards, sizeof(shards), "%d", c->nshards);
	res = exec(c,
		   "WITH i AS (INSERT INTO cluster_settings (shards) VALUES ($1::int)"
		   "           ON CONFLICT (id) DO NOTHING RETURNING shards)"
		   " SELECT shards FROM i UNION ALL SELECT shards FROM cluster_settings",
		   PARAMS(shards), err, errlen);
	if (!res_ok(res) || PQntuples(res) != 1) {
		if (res_ok(res))
			snprintf(err, errlen, "cluster_settings has %d rows", PQntuples(res));
		PQclear(res);
		goto fail;
	}
	theirs = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (theirs != c->nshards) {
		set_fatal(c,
			  "[cluster] shards = %d but the database's cluster has %d: every"
			  " instance must use the same",
			  c->nshards, theirs);
		drop_conn(c);
		return 2;
	}
	if (run(c,
		"INSERT INTO shard_leases (shard) SELECT generate_series(0, $1::int - 1)"
		" ON CONFLICT DO NOTHING",
		PARAMS(shards), err, errlen) < 0 ||
	    run(c, "LISTEN " CHANNEL, 0, NULL, err, errlen) < 0)
		goto fail;
	if (!c->reclaim_checked && check_previous(c, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	drop_conn(c);
	return -1;
}

/* ---------------------------------------------------------------- the view */

/* The main loop's requests, into the leases held (under lock). */
static void
apply_requests_locked(struct cluster *c)
{
	for (int s = 0; s < c->nshards; s++) {
		/* A shard being released is released all the same: when its
		 * session was taken over, the lease has moved on and the
		 * release finds nothing to do. */
		/* A request about another lease than the one held now (lost
		 * and taken again within one turn, before the view said so)
		 * is stale. */
		if (c->req_lost[s]) {
			c->req_lost[s] = false;
			if (c->held[s].epoch && !c->held[s].release_now && !c->req_released[s] &&
			    (!c->req_lost_epoch[s] || c->req_lost_epoch[s] == c->held[s].epoch)) {
				log_warn("cluster: shard %d (epoch %" PRId64
					 ") lost: its session was"
					 " taken over",
					 s, c->held[s].epoch);
				c->lost++;
				c->lost_epoch[s] = c->held[s].epoch;
				c->retake_after_ms[s] = clocks_mono_ms() + RETAKE_AFTER_MS;
				memset(&c->held[s], 0, sizeof(c->held[s]));
			}
		}
		if (c->req_released[s]) {
			c->req_released[s] = false;
			if (c->held[s].epoch &&
			    (!c->req_released_epoch[s] ||
			     c->req_released_epoch[s] == c->held[s].epoch))
				c->held[s].release_now = true;
		}
	}
	if (c->stop && !c->stopping) {
		c->stopping = true;
		for (int s = 0; s < c->nshards; s++)
			if (c->held[s].epoch)
				c->held[s].releasing = true;
	}
	c->pending = false;
}

static void
take_requests(struct cluster *c)
{
	pthread_mutex_lock(&c->lock);
	apply_requests_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* Builds the view from the leases held and publishes it when it differs. */
static void
publish(struct cluster *c)
{
	struct cluster_view *v = &c->scratch;
	bool changed;

	pthread_mutex_lock(&c->lock);
	apply_requests_locked(c);
	memset(v, 0, sizeof(*v));
	v->nshards = c->nshards;
	v->db_ok = c->db_ok;
	v->instances_alive = c->alive;
	v->joined = c->joined;
	v->fair_share = c->fair;
	v->stopped = c->stopped;
	v->acquired = c->acquired;
	v->released = c->released;
	v->lost = c->lost;
	v->renew_failures = c->failures;
	v->renewed_ms = c->renewed_ms;
	for (int s = 0; s < c->nshards; s++) {
		const struct held *h = &c->held[s];
		struct cluster_shard *vs = &v->shard[s];

		if (h->epoch && !h->release_now) {
			vs->state = h->releasing ? CLUSTER_RELEASING : CLUSTER_OWNED;
			vs->epoch = h->epoch;
			vs->deadline_ms = h->deadline_ms;
			snprintf(vs->owner, sizeof(vs->owner), "%s", c->name);
		} else {
			snprintf(vs->owner, sizeof(vs->owner), "%s", c->owner[s]);
		}
	}
	v->generation = c->view.generation;
	changed = memcmp(v, &c->view, sizeof(*v)) != 0;
	if (changed) {
		v->generation++;
		c->view = *v;
	}
	pthread_mutex_unlock(&c->lock);
	if (changed)
		wake_main(c);
}

/* ---------------------------------------------------------------- a turn */

/* The leases held (not being released) as a PostgreSQL array into buf:
 * "{3,7}" of their shards, or of their epochs. Returns how many. */
static int
int_array(char *buf, size_t len, const struct cluster *c, bool epochs)
{
	size_t at = 0;
	int n = 0;

	buf[at++] = '{';
	for (int s = 0; s < c->nshards; s++) {
		const struct held *h = &c->held[s];
		int w;

		if (!h->epoch || h->release_now)
			continue;
		w = epochs ? snprintf(buf + at, len - at, "%s%" PRId64, n ? "," : "", h->epoch) :
			     snprintf(buf + at, len - at, "%s%d", n ? "," : "", s);
		if (w < 0 || (size_t)w >= len - at - 1)
			break; /* cannot happen: len is sized for every shard */
		at += (size_t)w;
		n++;
	}
	buf[at++] = '}';
	buf[at] = '\0';
	return n;
}

/* Releases the leases the main loop is done with. 0 or -1. */
static int
release_done(struct cluster *c, char *err, size_t errlen)
{
	for (int s = 0; s < c->nshards; s++) {
		struct held *h = &c->held[s];
		char shard[16], epoch[24];
		PGresult *res;
		int n;

		if (!h->epoch || !h->release_now)
			continue;
		snprintf(shard, sizeof(shard), "%d", s);
		snprintf(epoch, sizeof(epoch), "%" PRId64, h->epoch);
		res = exec(c,
			   "WITH r AS (UPDATE shard_leases SET owner = NULL,"
			   "                  expires_at = clock_timestamp()"
			   "           WHERE shard = $1::int AND owner = $2 AND epoch = $3::bigint"
			   "           RETURNING shard, epoch, expires_at),"
			   " h AS (UPDATE lease_history h SET ended_at = r.expires_at,"
			   "              how = 'released'"
			   "       FROM r WHERE h.shard = r.shard AND h.epoch = r.epoch"
			   "       AND h.ended_at IS NULL)"
			   " SELECT (SELECT count(*) FROM r), pg_notify('" CHANNEL "', 'released')",
			   PARAMS(shard, c->name, epoch), err, errlen);
		if (!res_ok(res)) {
			PQclear(res);
			return -1;
		}
		n = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (n)
			log_info("cluster: shard %d (epoch %" PRId64 ") released", s, h->epoch);
		else
			log_info("cluster: shard %d (epoch %" PRId64 ") was no longer ours to"
				 " release",
				 s, h->epoch);
		c->released += n > 0;
		memset(h, 0, sizeof(*h));
	}
	return 0;
}

/* The leases whose session another connection resumed (the broker's
 * DISCONNECT 0x8E): their history ends as 'lost' now, and the lease is
 * freed when it is still ours under that epoch (nobody took it through
 * PostgreSQL: whoever resumed the session is not an instance holding the
 * lease, so the shard is taken again through a new lease, at once rather
 * than after it expires). 0 or -1 (kept for the next turn). */
static int
end_lost_sessions(struct cluster *c, char *err, size_t errlen)
{
	char shards[CLUSTER_MAX_SHARDS * 5 + 4], epochs[CLUSTER_MAX_SHARDS * 21 + 4];
	size_t ns = 0, ne = 0;
	int n = 0;

	shards[ns++] = '{';
	epochs[ne++] = '{';
	for (int s = 0; s < c->nshards; s++) {
		if (!c->lost_epoch[s])
			continue;
		ns += (size_t)snprintf(shards + ns, sizeof(shards) - ns, "%s%d", n ? "," : "", s);
		ne += (size_t)snprintf(epochs + ne, sizeof(epochs) - ne, "%s%" PRId64, n ? "," : "",
				       c->lost_epoch[s]);
		n++;
	}
	if (!n)
		return 0;
	snprintf(shards + ns, sizeof(shards) - ns, "}");
	snprintf(epochs + ne, sizeof(epochs) - ne, "}");
	if (run(c,
		"WITH h AS (UPDATE lease_history SET ended_at = clock_timestamp(), how = 'lost'"
		"           WHERE (shard, epoch) IN (SELECT * FROM unnest($2::int[], $3::bigint[]))"
		"             AND ended_at IS NULL)"
		" UPDATE shard_leases SET owner = NULL, expires_at = clock_timestamp()"
		" WHERE owner = $1 AND (shard, epoch) IN"
		"       (SELECT * FROM unnest($2::int[], $3::bigint[]))",
		PARAMS(c->name, shards, epochs), err, errlen) < 0)
		return -1;
	memset(c->lost_epoch, 0, sizeof(c->lost_epoch));
	return 0;
}

/* The heartbeat and the renewal of every lease held, one statement. The
 * leases that did not come back are lost. 0 or -1. */
static int
renew(struct cluster *c, char *err, size_t errlen)
{
	char pid[16], lease[24], shards[CLUSTER_MAX_SHARDS * 5 + 4];
	char epochs[CLUSTER_MAX_SHARDS * 21 + 4], lost_s[CLUSTER_MAX_SHARDS * 5 + 4];
	char lost_e[CLUSTER_MAX_SHARDS * 21 + 4];
	bool back[CLUSTER_MAX_SHARDS] = { false };
	size_t ls = 0, le = 0;
	int64_t sent_ms;
	PGresult *res;
	int nlost = 0;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(lease, sizeof(lease), "%" PRId64, c->lease_ms);
	int_array(shards, sizeof(shards), c, false);
	int_array(epochs, sizeof(epochs), c, true);
	sent_ms = clocks_mono_ms();
	res = exec(
		c,
		"WITH hb AS (INSERT INTO cluster_instances AS i (instance, host, pid, version,"
		"                   metrics, lease_ms, started_at, seen_at, stopping_at)"
		"            VALUES ($1, $2, $3::int, $4, $5, $6::int, clock_timestamp(),"
		"                    clock_timestamp(),"
		"                    CASE WHEN $8::boolean THEN clock_timestamp() END)"
		"            ON CONFLICT (instance) DO UPDATE SET host = EXCLUDED.host,"
		"              pid = EXCLUDED.pid, version = EXCLUDED.version,"
		"              metrics = EXCLUDED.metrics, lease_ms = EXCLUDED.lease_ms,"
		"              seen_at = EXCLUDED.seen_at,"
		"              started_at = CASE WHEN $7::boolean THEN EXCLUDED.started_at"
		"                           ELSE i.started_at END,"
		"              stopped_at = CASE WHEN $7::boolean THEN NULL ELSE i.stopped_at END,"
		"              stopping_at = CASE WHEN $8::boolean"
		"                            THEN coalesce(i.stopping_at, clock_timestamp())"
		"                            WHEN $7::boolean THEN NULL ELSE i.stopping_at END)"
		" UPDATE shard_leases SET expires_at = clock_timestamp()"
		"                         + $6::int * interval '1 millisecond'"
		" WHERE owner = $1 AND (shard, epoch) IN"
		"       (SELECT * FROM unnest($9::int[], $10::bigint[]))"
		" RETURNING shard",
		PARAMS(c->name, c->host, pid, CORDON_VERSION, c->metrics, lease,
		       c->heartbeat_done ? "false" : "true", c->stopping ? "true" : "false", shards,
		       epochs),
		err, errlen);
	if (!res_ok(res)) {
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		int s = atoi(PQgetvalue(res, i, 0));

		if (s >= 0 && s < c->nshards)
			back[s] = true;
	}
	PQclear(res);
	c->renewed_ms = sent_ms;
	lost_s[ls++] = '{';
	lost_e[le++] = '{';
	for (int s = 0; s < c->nshards; s++) {
		struct held *h = &c->held[s];

		if (!h->epoch || h->release_now)
			continue;
		if (back[s]) {
			h->deadline_ms = sent_ms + c->lease_ms * 9 / 10;
			continue;
		}
		log_warn("cluster: shard %d (epoch %" PRId64 ") lost: PostgreSQL no longer has"
			 " its lease as ours (taken after it expired, or changed by hand)",
			 s, h->epoch);
		ls += (size_t)snprintf(lost_s + ls, sizeof(lost_s) - ls, "%s%d", nlost ? "," : "",
				       s);
		le += (size_t)snprintf(lost_e + le, sizeof(lost_e) - le, "%s%" PRId64,
				       nlost ? "," : "", h->epoch);
		nlost++;
		c->lost++;
		memset(h, 0, sizeof(*h));
	}
	snprintf(lost_s + ls, sizeof(lost_s) - ls, "}");
	snprintf(lost_e + le, sizeof(lost_e) - le, "}");
	if (!c->heartbeat_done) {
		c->heartbeat_done = true;
		if (run(c, "SELECT pg_notify('" CHANNEL "', 'joined')", 0, NULL, err, errlen) < 0)
			return -1;
	}
	if (c->stopping && !c->announced_stop) {
		c->announced_stop = true;
		if (run(c, "SELECT pg_notify('" CHANNEL "', 'stopping')", 0, NULL, err, errlen) < 0)
			return -1;
	}
	if (end_lost_sessions(c, err, errlen) < 0)
		return -1;
	/* Closed by the taker as 'expired' as a rule; 'lost' is what nobody
	 * closed (the row changed by hand). */
	if (nlost &&
	    run(c,
		"UPDATE lease_history SET ended_at = clock_timestamp(), how = 'lost'"
		" WHERE (shard, epoch) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))"
		" AND ended_at IS NULL",
		PARAMS(lost_s, lost_e), err, errlen) < 0)
		return -1;
	return 0;
}

/* The leases as PostgreSQL has them, and the instances alive. `rows`
 * gets the kinds, `others` the shards of each other instance alive,
 * *ret_soonest the ms until the first lease of another instance expires
 * (-1: none). 0 or -1. */
static int
read_state(struct cluster *c, struct cluster_row *rows, int *others, int *ret_nothers,
	   int64_t *ret_soonest, char *err, size_t errlen)
{
	char shards[16], max_inst[16];
	PGresult *res;
	int nothers = 0, alive = 0;
	int64_t soonest = -1;

	snprintf(shards, sizeof(shards), "%d", c->nshards);
	res = exec(
		c,
		"SELECT shard, coalesce(owner, ''), epoch,"
		"       owner IS NOT NULL AND expires_at < clock_timestamp(),"
		"       coalesce(ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000),"
		"                0)::bigint"
		" FROM shard_leases WHERE shard < $1::int ORDER BY shard",
		PARAMS(shards), err, errlen);
	if (!res_ok(res)) {
		PQclear(res);
		return -1;
	}
	for (int s = 0; s < c->nshards; s++) {
		rows[s] = (struct cluster_row){ CLUSTER_ROW_FREE, false };
		c->owner[s][0] = '\0';
	}
	for (int i = 0; i < PQntuples(res); i++) {
		int s = atoi(PQgetvalue(res, i, 0));
		const char *owner = PQgetvalue(res, i, 1);
		const struct held *h;
		int64_t left = strtoll(PQgetvalue(res, i, 4), NULL, 10);

		if (s < 0 || s >= c->nshards)
			continue;
		h = &c->held[s];
		snprintf(c->owner[s], sizeof(c->owner[s]), "%s", owner);
		rows[s].expired = PQgetvalue(res, i, 3)[0] == 't';
		if (h->epoch && !h->release_now)
			rows[s].kind = h->releasing ? CLUSTER_ROW_RELEASING : CLUSTER_ROW_MINE;
		else if (!*owner)
			rows[s].kind = CLUSTER_ROW_FREE;
		else if (strcmp(owner, c->name) == 0)
			rows[s].kind = CLUSTER_ROW_SELF;
		else
			rows[s].kind = CLUSTER_ROW_OTHER;
		if (rows[s].kind == CLUSTER_ROW_OTHER && !rows[s].expired &&
		    (soonest < 0 || left < soonest))
			soonest = left;
	}
	PQclear(res);
	snprintf(max_inst, sizeof(max_inst), "%d", MAX_INSTANCES);
	res = exec(c,
		   "SELECT i.instance, (SELECT count(*) FROM shard_leases l"
		   "                    WHERE l.owner = i.instance AND l.shard < $1::int)"
		   " FROM cluster_instances i"
		   " WHERE i.stopped_at IS NULL AND i.stopping_at IS NULL"
		   " AND i.seen_at > clock_timestamp() - i.lease_ms * interval '1 millisecond'"
		   " ORDER BY i.instance LIMIT $2::int",
		   PARAMS(shards, max_inst), err, errlen);
	if (!res_ok(res)) {
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		alive++;
		if (strcmp(PQgetvalue(res, i, 0), c->name) != 0 && nothers < MAX_INSTANCES)
			others[nothers++] = atoi(PQgetvalue(res, i, 1));
	}
	PQclear(res);
	c->alive = alive;
	*ret_nothers = nothers;
	*ret_soonest = soonest;
	return 0;
}

/* Takes shard s if it is still what the plan saw (same epoch, and free,
 * expired or ours to reclaim). 1 taken, 0 not, -1 when the connection
 * failed (err). */
static int
acquire(struct cluster *c, int s, char *err, size_t errlen)
{
	char shard[16], epoch[24], lease[24], new_epoch[24], acquired_at[64], old_expires[64];
	bool old_null;
	PGresult *res;
	int64_t sent_ms;

	snprintf(shard, sizeof(shard), "%d", s);
	snprintf(lease, sizeof(lease), "%" PRId64, c->lease_ms);
	if (run(c, "BEGIN", 0, NULL, err, errlen) < 0)
		goto failed;
	/* The row as it is now, locked: another instance may have taken it
	 * since it was read. */
	res = exec(c,
		   "SELECT epoch, expires_at, expires_at IS NULL,"
		   "       owner IS NULL OR expires_at < clock_timestamp()"
		   "       OR (owner = $2 AND $3::boolean)"
		   " FROM shard_leases WHERE shard = $1::int FOR UPDATE",
		   PARAMS(shard, c->name, c->reclaim ? "true" : "false"), err, errlen);
	if (!res_ok(res) || PQntuples(res) != 1) {
		PQclear(res);
		goto failed;
	}
	if (PQgetvalue(res, 0, 3)[0] != 't') {
		PQclear(res);
		return run(c, "ROLLBACK", 0, NULL, err, errlen) < 0 ? -1 : 0;
	}
	snprintf(epoch, sizeof(epoch), "%s", PQgetvalue(res, 0, 0));
	snprintf(old_expires, sizeof(old_expires), "%s", PQgetvalue(res, 0, 1));
	old_null = PQgetvalue(res, 0, 2)[0] == 't';
	PQclear(res);
	sent_ms = clocks_mono_ms();
	res = exec(c,
		   "UPDATE shard_leases SET owner = $2, epoch = epoch + 1,"
		   " acquired_at = clock_timestamp(),"
		   " expires_at = clock_timestamp() + $3::int * interval '1 millisecond'"
		   " WHERE shard = $1::int RETURNING epoch, acquired_at",
		   PARAMS(shard, c->name, lease), err, errlen);
	if (!res_ok(res) || PQntuples(res) != 1) {
		PQclear(res);
		goto failed;
	}
	snprintf(new_epoch, sizeof(new_epoch), "%s", PQgetvalue(res, 0, 0));
	snprintf(acquired_at, sizeof(acquired_at), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	/* The previous holder's lease ended when it expired (or now, for
	 * a previous process of this name reclaimed before its expiry). */
	if (run(c,
		"WITH c AS (UPDATE lease_history SET how = 'expired',"
		"                  ended_at = least($3::timestamptz, $4::timestamptz)"
		"           WHERE shard = $1::int AND epoch = $2::bigint AND ended_at IS NULL)"
		" INSERT INTO lease_history (shard, epoch, owner, acquired_at)"
		" VALUES ($1::int, $5::bigint, $6, $4::timestamptz)",
		PARAMS(shard, epoch, old_null ? NULL : old_expires, acquired_at, new_epoch,
		       c->name),
		err, errlen) < 0 ||
	    run(c, "COMMIT", 0, NULL, err, errlen) < 0)
		goto failed;
	c->held[s] = (struct held){
		.epoch = strtoll(new_epoch, NULL, 10),
		.deadline_ms = sent_ms + c->lease_ms * 9 / 10,
	};
	snprintf(c->owner[s], sizeof(c->owner[s]), "%s", c->name);
	c->acquired++;
	log_info("cluster: shard %d acquired (epoch %s)", s, new_epoch);
	return 1;
failed:
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK)
		return -1;
	log_limited(&c->acquire_rl, LOG_LEVEL_WARNING, "cluster: cannot take shard %d: %s", s, err);
	{
		char ignored[256];

		if (run(c, "ROLLBACK", 0, NULL, ignored, sizeof(ignored)) < 0)
			return -1;
	}
	return 0;
}

/* After cluster_stop_begin() and once nothing is held: stopped_at. */
static int
write_stopped(struct cluster *c, int64_t timeout_ms, char *err, size_t errlen)
{
	char pid[16];
	PGresult *res;
	int ok;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	res = exec_for(c, timeout_ms,
		       "WITH s AS (UPDATE cluster_instances SET stopped_at = clock_timestamp(),"
		       "                  stopping_at = coalesce(stopping_at, clock_timestamp())"
		       "           WHERE instance = $1 AND pid = $2::int)"
		       " SELECT pg_notify('" CHANNEL "', 'stopped')",
		       PARAMS(c->name, pid), err, errlen);
	ok = res_ok(res);
	PQclear(res);
	return ok ? 0 : -1;
}

static int
held_count(const struct cluster *c)
{
	int n = 0;

	for (int s = 0; s < c->nshards; s++)
		n += c->held[s].epoch != 0;
	return n;
}

/* One turn (connecting first when needed). 0, 1 (schema not there yet),
 * 2 (fatal), or -1 with the reason (the connection dropped). */
static int
run_turn(struct cluster *c, char *err, size_t errlen)
{
	struct cluster_row rows[CLUSTER_MAX_SHARDS];
	int others[MAX_INSTANCES], nothers = 0;
	struct cluster_plan plan;
	struct cluster_plan_input in;
	int64_t now = clocks_mono_ms(), soonest = -1;
	int rc;

	if (!c->conn) {
		rc = connect_db(c, err, errlen);
		if (rc != 0)
			return rc;
		now = clocks_mono_ms();
		c->settled_ms = now + c->lease_ms;
		c->take_after_ms = now + c->lease_ms / 10;
	}
	if (c->last_turn_ms && now - c->last_turn_ms > c->lease_ms)
		c->settled_ms = now + c->lease_ms; /* we were paused */
	c->last_turn_ms = now;
	take_requests(c);
	if (release_done(c, err, errlen) < 0 || renew(c, err, errlen) < 0)
		goto fail;
	if (c->stopping && held_count(c) == 0) {
		if (write_stopped(c, c->stmt_ms, err, errlen) < 0)
			goto fail;
		c->stopped = true;
		log_notice("cluster: every lease given back; stopped");
		return 0;
	}
	if (read_state(c, rows, others, &nothers, &soonest, err, errlen) < 0)
		goto fail;
	now = clocks_mono_ms();
	for (int s = 0; s < c->nshards; s++)
		if (rows[s].kind == CLUSTER_ROW_FREE && now < c->retake_after_ms[s])
			rows[s].kind = CLUSTER_ROW_OTHER; /* not yet: see retake_after_ms */
	in = (struct cluster_plan_input){
		.nshards = c->nshards,
		.rows = rows,
		.others = others,
		.nothers = nothers,
		.stopping = c->stopping,
		.take = now >= c->take_after_ms,
		.take_expired = now >= c->settled_ms,
		.reclaim = c->reclaim,
		.seed = c->seed,
		.offer_max = OFFER_MAX,
	};
	cluster_plan(&in, &plan);
	c->fair = plan.target;
	for (int i = 0; i < plan.noffer; i++) {
		c->held[plan.offer[i]].releasing = true;
		if (!c->stopping)
			log_info("cluster: shard %d offered back (fair share %d of %d instances)",
				 plan.offer[i], plan.target, nothers + 1);
	}
	for (int i = 0; i < plan.ntake; i++) {
		bool stop;

		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break; /* cluster_stop_begin() during the turn */
		if (acquire(c, plan.take[i], err, errlen) < 0)
			goto fail;
	}
	if (in.take) {
		c->reclaim = false;
		c->joined = true;
	}
	/* The next turn: a third of the lease; sooner when a shard we would
	 * take expires, or the join delay or settling ends with work left. */
	c->next_turn_ms = c->renewed_ms + c->lease_ms / 3;
	if (held_count(c) < plan.target && !c->stopping) {
		if (!in.take)
			c->next_turn_ms = c->take_after_ms;
		else if (soonest >= 0 && in.take_expired &&
			 now + soonest + EXPIRY_MARGIN_MS < c->next_turn_ms)
			c->next_turn_ms = now + soonest + EXPIRY_MARGIN_MS;
		else if (!in.take_expired && c->settled_ms < c->next_turn_ms)
			c->next_turn_ms = c->settled_ms;
	}
	return 0;
fail:
	/* Lost, or an error PostgreSQL answered: start over on a new session
	 * (no transaction of ours left open). */
	if (c->conn)
		drop_conn(c);
	return -1;
}

/* ---------------------------------------------------------------- the thread */

/* Waits until next_ms, a request, a NOTIFY (at most every NOTIFY_GAP_MS)
 * or a lost connection. Returns true to quit. */
static bool
wait_turn(struct cluster *c, int64_t next_ms)
{
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = c->kick_fd, .events = POLLIN },
			{ .fd = c->conn ? PQsocket(c->conn) : -1, .events = POLLIN },
		};
		int64_t now = clocks_mono_ms();
		bool pending, quit;
		PGnotify *n;
		bool notified = false;

		pthread_mutex_lock(&c->lock);
		pending = c->pending;
		quit = c->quit;
		pthread_mutex_unlock(&c->lock);
		if (quit)
			return true;
		if (pending && !c->stopped)
			return false;
		if (c->conn) {
			while ((n = PQnotifies(c->conn)) != NULL) {
				notified = true;
				PQfreemem(n);
			}
			if (notified && !c->stopped) {
				int64_t soon = c->last_turn_ms + NOTIFY_GAP_MS;

				if (soon < next_ms)
					next_ms = soon;
			}
		}
		if (now >= next_ms)
			return false;
		if (poll(fds, 2, (int)(next_ms - now > 60000 ? 60000 : next_ms - now)) < 0 &&
		    errno != EINTR) {
			log_err("cluster: poll: %s", strerror(errno));
			return false;
		}
		if (fds[0].revents) {
			eventfd_t v;

			(void)eventfd_read(c->kick_fd, &v);
		}
		if (fds[1].revents && !PQconsumeInput(c->conn)) {
			if (c->stopped)
				drop_conn(c);
			else
				return false; /* the turn finds the connection broken */
		}
	}
}

static void
on_failure(struct cluster *c, const char *err, int64_t retry_ms)
{
	c->failures++;
	c->db_ok = false;
	if (!c->failing)
		log_warn("cluster: PostgreSQL unreachable or refusing (%s): %d leases not renewed;"
			 " retrying in %" PRId64 " ms",
			 err, held_count(c), retry_ms);
	else if (strcmp(err, c->last_err) != 0)
		log_limited(&c->fail_rl, LOG_LEVEL_WARNING,
			    "cluster: PostgreSQL still unreachable or refusing (%s); retrying in"
			    " %" PRId64 " ms",
			    err, retry_ms);
	c->failing = true;
	snprintf(c->last_err, sizeof(c->last_err), "%s", err);
}

static void
on_success(struct cluster *c)
{
	if (c->failing)
		log_notice("cluster: PostgreSQL answers again: %d leases held", held_count(c));
	c->failing = false;
	c->db_ok = true;
}

static void *
cluster_thread(void *arg)
{
	struct cluster *c = arg;
	struct backoff backoff;
	int64_t next_ms = 0;
	char err[512];

	/* Retries within a third of the lease: once PostgreSQL is back, every
	 * owner renews before anyone may take an expired lease (settled_ms). */
	backoff_init(&backoff, BACKOFF_MIN_MS,
		     c->lease_ms / 3 > BACKOFF_MIN_MS ? c->lease_ms / 3 : BACKOFF_MIN_MS);
	while (!wait_turn(c, next_ms)) {
		bool had_conn = c->conn != NULL;
		int rc;

		if (c->stopped || cluster_fatal(c)) {
			next_ms = clocks_mono_ms() + 3600 * 1000;
			take_requests(c);
			continue;
		}
		err[0] = '\0';
		rc = run_turn(c, err, sizeof(err));
		/* A session that worked before may just be stale (killed while
		 * we were paused, PostgreSQL restarted): one new one at once. */
		if (rc < 0 && had_conn && !quitting(c))
			rc = run_turn(c, err, sizeof(err));
		if (rc < 0 && quitting(c))
			break;
		switch (rc) {
		case 0:
			backoff_reset(&backoff);
			on_success(c);
			next_ms = c->stopped ? clocks_mono_ms() + 3600 * 1000 : c->next_turn_ms;
			break;
		case 1: next_ms = clocks_mono_ms() + SCHEMA_WAIT_MS; break;
		case 2: next_ms = clocks_mono_ms() + 3600 * 1000; break;
		default:
			next_ms = backoff_next(&backoff);
			on_failure(c, err, next_ms);
			next_ms += clocks_mono_ms();
			break;
		}
		publish(c);
	}
	/* A clean stop that the main loop did not finish: say so anyway, so
	 * that the others stop counting us (the leases left expire). */
	pthread_mutex_lock(&c->lock);
	c->finishing = c->stop && !c->stopped;
	pthread_mutex_unlock(&c->lock);
	if (c->finishing && c->conn && write_stopped(c, FINAL_WRITE_MS, err, sizeof(err)) < 0)
		log_warn("cluster: cannot mark this instance stopped: %s", err);
	if (c->conn)
		drop_conn(c);
	return NULL;
}

/* ---------------------------------------------------------------- the API */

int
cluster_create(const struct config *cfg, int wake_fd, struct cluster **ret_cluster)
{
	struct cluster *c;
	int err;

	if (cfg->cluster_shards < 1 || cfg->cluster_shards > CLUSTER_MAX_SHARDS)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->wake_fd = wake_fd;
	c->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->nshards = (int)cfg->cluster_shards;
	c->lease_ms = cfg->cluster_lease_time;
	c->stmt_ms = c->lease_ms / 3 > 1000 ? c->lease_ms / 3 : 1000;
	c->conninfo = strdup(cfg->pg_conninfo);
	c->name = strdup(cfg->mqtt_client_id);
	c->metrics = strdup(cfg->metrics_listen ? cfg->metrics_listen : "");
	c->acquire_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 60);
	c->fail_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1, 60);
	c->view.nshards = c->nshards;
	if (gethostname(c->host, sizeof(c->host)) < 0)
		snprintf(c->host, sizeof(c->host), "?");
	c->host[sizeof(c->host) - 1] = '\0';
	if (c->kick_fd < 0) {
		err = -errno;
		cluster_destroy(c);
		return err;
	}
	if (!c->conninfo || !c->name || !c->metrics) {
		cluster_destroy(c);
		return -ENOMEM;
	}
	c->seed = (unsigned)XXH3_64bits(c->name, strlen(c->name));
	err = pthread_create(&c->thread, NULL, cluster_thread, c);
	if (err) {
		cluster_destroy(c);
		return -err;
	}
	c->started = true;
	*ret_cluster = c;
	return 0;
}

void
cluster_view(struct cluster *c, struct cluster_view *ret)
{
	pthread_mutex_lock(&c->lock);
	*ret = c->view;
	pthread_mutex_unlock(&c->lock);
}

/* Sets shard s NOT_OWNED in the view at once and records the request in
 * `req` for the thread; wakes both sides. */
static void
request(struct cluster *c, int shard, bool *req, int64_t *req_epoch, bool only_if_ours,
	int64_t epoch)
{
	struct cluster_shard *vs;

	if (shard < 0 || shard >= c->nshards)
		return;
	pthread_mutex_lock(&c->lock);
	vs = &c->view.shard[shard];
	/* Not ours, or ours again under another lease than the one asked
	 * about (a late report of an older session): nothing to do. */
	if ((only_if_ours && vs->state == CLUSTER_NOT_OWNED) ||
	    (epoch > 0 && vs->state != CLUSTER_NOT_OWNED && vs->epoch != epoch)) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	req[shard] = true;
	req_epoch[shard] = epoch;
	c->pending = true;
	if (vs->state != CLUSTER_NOT_OWNED) {
		vs->state = CLUSTER_NOT_OWNED;
		vs->epoch = 0;
		vs->deadline_ms = 0;
		c->view.generation++;
	}
	pthread_mutex_unlock(&c->lock);
	kick(c);
	wake_main(c);
}

void
cluster_released(struct cluster *c, int shard, int64_t epoch)
{
	request(c, shard, c->req_released, c->req_released_epoch, true, epoch);
}

void
cluster_session_lost(struct cluster *c, int shard, int64_t epoch)
{
	request(c, shard, c->req_lost, c->req_lost_epoch, false, epoch);
}

void
cluster_stop_begin(struct cluster *c)
{
	pthread_mutex_lock(&c->lock);
	if (!c->stop) {
		c->stop = true;
		c->pending = true;
		for (int s = 0; s < c->nshards; s++)
			if (c->view.shard[s].state == CLUSTER_OWNED)
				c->view.shard[s].state = CLUSTER_RELEASING;
		c->view.generation++;
	}
	pthread_mutex_unlock(&c->lock);
	kick(c);
	wake_main(c);
}

const char *
cluster_fatal(struct cluster *c)
{
	const char *f;

	pthread_mutex_lock(&c->lock);
	f = c->fatal[0] ? c->fatal : NULL;
	pthread_mutex_unlock(&c->lock);
	return f;
}

void
cluster_destroy(struct cluster *c)
{
	if (!c)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->lock);
		c->quit = true;
		pthread_mutex_unlock(&c->lock);
		kick(c);
		pthread_join(c->thread, NULL);
	}
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	pthread_mutex_destroy(&c->lock);
	free(c->conninfo);
	free(c->name);
	free(c->metrics);
	free(c);
}
