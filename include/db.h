/* db.h - libpq helpers shared by the store and cordonctl */
#ifndef CORDON_DB_H
#define CORDON_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects with `conninfo` plus our defaults (connect_timeout 10 s,
 * application_name); returns the connection even when it failed (check
 * PQstatus), or NULL when out of memory. */
PGconn *db_connect(const char *conninfo, const char *application_name);

/* Room for a SQLSTATE: five characters and the NUL. */
#define DB_SQLSTATE_LEN 6

/* Applies the embedded migrations newer than schema_version, each in its
 * own transaction, under an advisory lock so that several instances and
 * cordonctl may race. It reads the version first and takes the lock, or
 * creates anything, only when a migration is missing: a role without
 * CREATE on the schema works once the migrations are applied. Returns the
 * schema version now in place, or -1 with the reason in errbuf and, when
 * `errstate` (DB_SQLSTATE_LEN bytes) is not NULL, the SQLSTATE of the
 * failed statement in it ("" when PostgreSQL sent none). */
int db_migrate(PGconn *conn, char *errbuf, size_t errlen, char *errstate);

/* Reads the schema version without locking or creating anything: the
 * highest version in schema_version, 0 when that table does not exist or
 * is empty. Returns it, or -1 as db_migrate(). */
int db_schema_version(PGconn *conn, char *errbuf, size_t errlen, char *errstate);

/* The version of the newest migration this build carries. */
int db_latest_version(void);

/* The error of `res` (or of the connection when res is NULL) as one
 * line without the trailing newline. */
void db_error_text(PGconn *conn, PGresult *res, char *buf, size_t len);

/* Runs a command that returns no rows; 0 or -1 with the reason in errbuf. */
int db_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen);

#endif
