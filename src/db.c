/* db.c - connection defaults and the migration runner. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrations.h"

#define MIGRATE_LOCK "7236312"	/* pg_advisory_xact_lock key */

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

static void
set_err(char *errbuf, size_t errlen, const char *what, PGconn *conn, PGresult *res)
{
	char msg[512];

	db_error_text(conn, res, msg, sizeof(msg));
	snprintf(errbuf, errlen, "%s: %s", what, msg);
}

int
db_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		set_err(errbuf, errlen, "PostgreSQL", conn, res);
	PQclear(res);
	return ok ? 0 : -1;
}

/* Reads schema_version's maximum (0 when empty); -1 on error. */
static int
current_version(PGconn *conn, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_version");
	int v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = atoi(PQgetvalue(res, 0, 0));
	else
		set_err(errbuf, errlen, "reading schema_version", conn, res);
	PQclear(res);
	return v;
}

int
db_migrate(PGconn *conn, char *errbuf, size_t errlen)
{
	int version = 0;

	for (const struct migration *m = migrations; m->name; m++) {
		char insert[256];

		if (db_exec(conn, "BEGIN", errbuf, errlen) < 0)
			return -1;
		if (db_exec(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", errbuf, errlen) < 0 ||
		    db_exec(conn, "CREATE TABLE IF NOT EXISTS schema_version ("
			    " version integer PRIMARY KEY, name text NOT NULL,"
			    " applied_at timestamptz NOT NULL DEFAULT now())", errbuf, errlen) < 0)
			goto fail;
		version = current_version(conn, errbuf, errlen);
		if (version < 0)
			goto fail;
		if (version >= m->version) {
			if (db_exec(conn, "COMMIT", errbuf, errlen) < 0)
				return -1;
			continue;
		}
		if (db_exec(conn, m->sql, errbuf, errlen) < 0) {
			char inner[512];

			snprintf(inner, sizeof(inner), "%s", errbuf);
			snprintf(errbuf, errlen, "migration %s: %s", m->name, inner);
			goto fail;
		}
		snprintf(insert, sizeof(insert),
			 "INSERT INTO schema_version (version, name) VALUES (%d, '%s')",
			 m->version, m->name);
		if (db_exec(conn, insert, errbuf, errlen) < 0 ||
		    db_exec(conn, "COMMIT", errbuf, errlen) < 0)
			goto fail;
		version = m->version;
	}
	return version;
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
