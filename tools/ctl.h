/* ctl.h - what the cordonctl files share: the session, argument parsing,
 * queries and output helpers. Private to tools/ (not a core module). */
#ifndef CORDON_CTL_H
#define CORDON_CTL_H

#include <libpq-fe.h>
#include <stdarg.h>

/* Exit codes: 0 done, 1 failed (nothing changed), 2 usage error. */
#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

/* One invocation: the config file and, once ctl_open() ran, a connection
 * to a migrated database. */
struct ctl {
	const char *config_path;
	PGconn *conn;
	int schema_version;
	int in_tx;
};

/* An option of a command: "--name VALUE" (value != NULL) or a "--name"
 * flag (flag != NULL). Both are set only when the option is given. */
struct ctl_opt {
	const char *name;
	const char **value;
	int *flag;
};

/* Splits argv (after the command words) into positionals and options.
 * Accepts "--name VALUE", "--name=VALUE" and "--" (end of options).
 * Returns the number of positionals (stored in pos), or -1 after printing
 * a usage error when an option is unknown, repeated or lacks its value, or
 * when the positionals are fewer than min_pos or more than max_pos. */
int ctl_parse(const char *synopsis, int argc, char **argv, const struct ctl_opt *opts,
	      const char **pos, int min_pos, int max_pos);

/* Prints "cordonctl: <message>" and the synopsis to stderr; returns CTL_USAGE. */
int ctl_usage(const char *synopsis, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "cordonctl: <message>" to stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when s is a site, gate, zone, household, card or person id:
 * [A-Za-z0-9_-]{1,64} (SPEC 2). */
int ctl_valid_id(const char *s);
/* Checks an id argument; prints a usage error naming `what` when it is bad.
 * Returns 0 or -1. */
int ctl_check_id(const char *synopsis, const char *what, const char *s);

/* Loads the config file, connects to PostgreSQL and applies the migrations.
 * Returns 0, or -1 after printing why. */
int ctl_open(struct ctl *ctl);
/* Rolls back an open transaction and closes the connection. */
void ctl_close(struct ctl *ctl);

/* Runs one parameterized statement (text parameters, NULL = SQL NULL).
 * Returns the result when it succeeded (PQclear it), or NULL after
 * printing "cordonctl: <what>: <PostgreSQL's message>". */
PGresult *ctl_query(struct ctl *ctl, const char *what, const char *sql,
		    int nparams, const char *const *params);
/* Like ctl_query() for statements whose result is not needed: 0 or -1. */
int ctl_exec(struct ctl *ctl, const char *what, const char *sql,
	     int nparams, const char *const *params);

/* BEGIN: 0 or -1. */
int ctl_begin(struct ctl *ctl);
/* Sends NOTIFY cordon_register with the site as payload and COMMITs, in
 * the transaction that changed the register. 0 or -1 (rolled back). */
int ctl_commit(struct ctl *ctl, const char *site);
/* ROLLBACK if a transaction is open. */
void ctl_rollback(struct ctl *ctl);
/* Creates `site` with the default time zone unless it exists; in the
 * caller's transaction. 0 or -1. */
int ctl_ensure_site(struct ctl *ctl, const char *site);
/* 1 when `site` exists, 0 when not (an error is printed), -1 on error. */
int ctl_site_exists(struct ctl *ctl, const char *site);

/* Prints a result as an aligned table with the column names as header. */
void ctl_print_table(PGresult *res);

/* The commands; each returns the exit code. argv[0] is the first word
 * after the command's name(s). */
int ctl_cmd_site(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_gate(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_zone(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_card(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_isolate(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_release(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_import(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_alerts(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_ack(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_resolve(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_stats(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_report(struct ctl *ctl, int argc, char **argv);

#endif
