/* db.h - libpq helpers shared by the store and cordonctl */
#ifndef CORDON_DB_H
#define CORDON_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects with `conninfo` plus our defaults (connect_timeout 10 s,
 * application_name); returns the connection even when it failed (check
 * PQstatus), or NULL when out of memory. */
PGconn *db_connect(const char *conninfo, const char *application_name);

/* Applies the embedded migrations newer than schema_version, each in its
 * own transaction, under an advisory lock so that several instances and
 * cordonctl may race. Returns the schema version now in place, or -1 with
 * the reason in errbuf. */
int db_migrate(PGconn *conn, char *errbuf, size_t errlen);

/* The error of `res` (or of the connection when res is NULL) as one
 * line without the trailing newline. */
void db_error_text(PGconn *conn, PGresult *res, char *buf, size_t len);

/* Runs a command that returns no rows; 0 or -1 with the reason in errbuf. */
int db_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen);

#endif
