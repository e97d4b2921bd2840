/* db.c - connection defaults and the migration runner. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrations.h"

#define MIGRATE_LOCK "7236312" /* pg_advisory_xact_lock key */

/* Server notices ("relation ... already exists, skipping") go to our log
 * at debug level instead of raw to stderr. */
static void
on_notice(void *arg, const char *message)
{
	size_t n = strlen(message);

	(void)arg;
	while (n > 0 && message[n - 1] == '\n')
		n--;
	log_debug("PostgreSQL: %.*s", (int)n, message);
}

PGconn *
db_connect(const char *conninfo, const char *application_name)
{
	/* Our defaults come first: keywords in `conninfo` override them. */
	const char *keys[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
	const char *vals[] = { "10", application_name, conninfo, NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (conn)
		PQsetNoticeProcessor(conn, on_notice, NULL);
	return conn;
}

void
db_error_text(PGconn *conn, PGresult *res, char *buf, size_t len)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	size_t n;

	snprintf(buf, len, "%s", msg && *msg ? msg : "unknown error");
	/* The first line is the message; the rest (LINE 1: ..., a caret)
	 * would break the one-line-per-event log. */
	buf[strcspn(buf, "\n")] = '\0';
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
}

/* Writes "what: message" into errbuf and, when `errstate` is not NULL,
 * the SQLSTATE of `res` ("" when there is none: a lost connection). */
static void
set_err(char *errbuf, size_t errlen, char *errstate, const char *what, PGconn *conn, PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char msg[512];

	db_error_text(conn, res, msg, sizeof(msg));
	snprintf(errbuf, errlen, "%s: %s", what, msg);
	if (errstate)
		snprintf(errstate, DB_SQLSTATE_LEN, "%s", state ? state : "");
}

/* db_exec() with the SQLSTATE of a failure in `errstate` (or NULL). */
static int
exec_state(PGconn *conn, const char *sql, char *errbuf, size_t errlen, char *errstate)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		set_err(errbuf, errlen, errstate, "PostgreSQL", conn, res);
	PQclear(res);
	return ok ? 0 : -1;
}

int
db_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
	return exec_state(conn, sql, errbuf, errlen, NULL);
}

/* Runs a query that returns one integer; returns it, or -1 with the
 * reason in errbuf (`what` names the step). */
static int
query_int(PGconn *conn, const char *sql, const char *what, char *errbuf, size_t errlen,
	  char *errstate)
{
	PGresult *res = PQexec(conn, sql);
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = atoi(PQgetvalue(res, 0, 0));
	else
		set_err(errbuf, errlen, errstate, what, conn, res);
	PQclear(res);
	return v;
}

/* Reads schema_version's maximum (0 when empty); -1 on error. */
static int
current_version(PGconn *conn, char *errbuf, size_t errlen, char *errstate)
{
	return query_int(conn, "SELECT coalesce(max(version), 0) FROM schema_version",
			 "reading schema_version", errbuf, errlen, errstate);
}

int
db_latest_version(void)
{
	int v = 0;

	for (const struct migration *m = migrations; m->name; m++)
		v = m->version;
	return v;
}

int
db_schema_version(PGconn *conn, char *errbuf, size_t errlen, char *errstate)
{
	int exists = query_int(conn, "SELECT (to_regclass('schema_version') IS NOT NULL)::int",
			       "looking for schema_version", errbuf, errlen, errstate);

	if (exists <= 0)
		return exists;
	return current_version(conn, errbuf, errlen, errstate);
}

int
db_migrate(PGconn *conn, char *errbuf, size_t errlen, char *errstate)
{
	int version;

	/* Without a lock or a CREATE first: a role that may not create
	 * anything runs on a schema that is complete, and instances that
	 * start together do not queue on the lock. */
	version = db_schema_version(conn, errbuf, errlen, errstate);
	if (version < 0 || version >= db_latest_version())
		return version;
	for (const struct migration *m = migrations; m->name; m++) {
		char insert[256];

		if (exec_state(conn, "BEGIN", errbuf, errlen, errstate) < 0)
			return -1;
		if (exec_state(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", errbuf,
			       errlen, errstate) < 0 ||
		    exec_state(conn,
			       "CREATE TABLE IF NOT EXISTS schema_version ("
			       " version integer PRIMARY KEY, name text NOT NULL,"
			       " applied_at timestamptz NOT NULL DEFAULT now())",
			       errbuf, errlen, errstate) < 0)
			goto fail;
		version = current_version(conn, errbuf, errlen, errstate);
		if (version < 0)
			goto fail;
		if (version >= m->version) {
			if (exec_state(conn, "COMMIT", errbuf, errlen, errstate) < 0)
				return -1;
			continue;
		}
		if (exec_state(conn, m->sql, errbuf, errlen, errstate) < 0) {
			char inner[512];

			snprintf(inner, sizeof(inner), "%s", errbuf);
			snprintf(errbuf, errlen, "migration %s: %s", m->name, inner);
			goto fail;
		}
		snprintf(insert, sizeof(insert),
			 "INSERT INTO schema_version (version, name) VALUES (%d, '%s')", m->version,
			 m->name);
		if (exec_state(conn, insert, errbuf, errlen, errstate) < 0 ||
		    exec_state(conn, "COMMIT", errbuf, errlen, errstate) < 0)
			goto fail;
		version = m->version;
	}
	return version;
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
