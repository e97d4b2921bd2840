/* web_db.c - cordon-web's PostgreSQL connections: a pool of [web] db_pool
 * connections, made when first needed and made again when found broken.
 * A request waits a bounded time for one (then 503); while PostgreSQL is
 * away a connect is tried at most once a second, so a flood of requests
 * does not become a flood of connects. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clocks.h"
#include "db.h"
#include "log.h"
#include "web.h"

struct web_db {
	char *conninfo;
	int size;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	PGconn **idle; /* stack of free connections (NULL: to be made) */
	int nidle;
	int64_t next_try; /* monotonic ms: no connect before */
	bool up;
	bool migrated;
	struct log_ratelimit rl;
};

int
web_db_create(const char *conninfo, int size, struct web_db **ret)
{
	struct web_db *db = calloc(1, sizeof(*db));
	pthread_condattr_t ca;

	if (!db)
		return -ENOMEM;
	db->conninfo = strdup(conninfo);
	db->idle = calloc((size_t)size, sizeof(*db->idle));
	if (!db->conninfo || !db->idle) {
		free(db->conninfo);
		free(db->idle);
		free(db);
		return -ENOMEM;
	}
	db->size = size;
	db->nidle = size; /* all NULL: made on first use */
	db->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(3, 60);
	pthread_mutex_init(&db->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->freed, &ca);
	pthread_condattr_destroy(&ca);
	*ret = db;
	return 0;
}

void
web_db_destroy(struct web_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < db->nidle; i++)
		if (db->idle[i])
			PQfinish(db->idle[i]);
	pthread_mutex_destroy(&db->lock);
	pthread_cond_destroy(&db->freed);
	free(db->idle);
	free(db->conninfo);
	free(db);
}

bool
web_db_is_up(struct web_db *db)
{
	bool up;

	pthread_mutex_lock(&db->lock);
	up = db->up;
	pthread_mutex_unlock(&db->lock);
	return up;
}

/* A new connection, migrated once per process. NULL when it failed (logged). */
static PGconn *
connect_one(struct web_db *db)
{
	char err[256], state[DB_SQLSTATE_LEN];
	PGconn *c = db_connect(db->conninfo, "cordon-web");
	bool was_up;

	if (c && PQstatus(c) == CONNECTION_OK &&
	    (__atomic_load_n(&db->migrated, __ATOMIC_ACQUIRE) ||
	     db_migrate(c, err, sizeof(err), state) >= 0)) {
		__atomic_store_n(&db->migrated, true, __ATOMIC_RELEASE);
		pthread_mutex_lock(&db->lock);
		was_up = db->up;
		db->up = true;
		pthread_mutex_unlock(&db->lock);
		if (!was_up)
			log_notice("PostgreSQL: connected");
		return c;
	}
	if (c && PQstatus(c) != CONNECTION_OK)
		db_error_text(c, NULL, err, sizeof(err));
	else if (!c)
		snprintf(err, sizeof(err), "out of memory");
	pthread_mutex_lock(&db->lock);
	was_up = db->up;
	db->up = false;
	db->next_try = clocks_mono_ms() + 1000;
	pthread_mutex_unlock(&db->lock);
	if (was_up)
		log_warn("PostgreSQL unreachable: %s; answering 503 until it is back", err);
	else
		log_limited(&db->rl, LOG_LEVEL_WARNING, "PostgreSQL unreachable: %s", err);
	if (c)
		PQfinish(c);
	return NULL;
}

static bool
is_readable(PGconn *c)
{
	struct pollfd p = { PQsocket(c), POLLIN, 0 };

	return p.fd < 0 || poll(&p, 1, 0) != 0;
}

int
web_db_acquire(struct web_db *db, int wait_ms, PGconn **ret)
{
	struct timespec until;
	PGconn *c;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&db->lock);
	while (db->nidle == 0)
		if (pthread_cond_timedwait(&db->freed, &db->lock, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&db->lock);
			return -EAGAIN;
		}
	c = db->idle[--db->nidle];
	if (!c && !db->up && clocks_mono_ms() < db->next_try) {
		db->idle[db->nidle++] = NULL;
		pthread_mutex_unlock(&db->lock);
		return -EIO;
	}
	pthread_mutex_unlock(&db->lock);
	/* An idle connection has nothing to read: when its socket is readable
	 * the server has sent its goodbye (a restart, an idle timeout) or at
	 * least something we do not wait for. Made again now rather than
	 * failing the caller's query. */
	if (c && (PQstatus(c) != CONNECTION_OK || is_readable(c))) {
		PQfinish(c);
		c = NULL;
	}
	if (!c)
		c = connect_one(db);
	if (!c) {
		web_db_release(db, NULL);
		return -EIO;
	}
	*ret = c;
	return 0;
}

void
web_db_release(struct web_db *db, PGconn *conn)
{
	if (conn && PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		conn = NULL;
		pthread_mutex_lock(&db->lock);
		if (db->up)
			log_warn("PostgreSQL connection lost; reconnecting");
		db->up = false;
		pthread_mutex_unlock(&db->lock);
	} else if (conn && PQtransactionStatus(conn) != PQTRANS_IDLE) {
		PGresult *r = PQexec(conn, "ROLLBACK");

		PQclear(r);
	}
	pthread_mutex_lock(&db->lock);
	db->idle[db->nidle++] = conn;
	pthread_cond_signal(&db->freed);
	pthread_mutex_unlock(&db->lock);
}

PGresult *
web_db_query(PGconn *conn, const char *what, const char *sql, int nparams,
	     const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	char err[512];

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	db_error_text(conn, res, err, sizeof(err));
	log_warn("%s: %s", what, err);
	PQclear(res);
	return NULL;
}
