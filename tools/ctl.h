/* ctl.h - what the cordonctl files share: the session, argument parsing,
 * queries and output helpers. Private to tools/ (not a core module). */
#ifndef CORDON_CTL_H
#define CORDON_CTL_H

#include <MQTTClient.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>

#include "tool.h"

struct config;

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
	/* From the config file, at ctl_open(): what a register entry without
	 * a value of its own (NULL, sql/0004) follows in cordond. */
	char default_tz[64];		   /* [site] timezone */
	long long check_interval_s;	   /* [rules] check_interval */
	long long disinfection_interval_s; /* [rules] disinfection_interval */
	char *id_key_file;		   /* [site] id_key_file, "" when none */
	/* -u USER and --password-file FILE of the MQTT commands (NULL: [mqtt]
	 * username and password_file): ctl_load_config() puts them in. */
	const char *mqtt_username;
	const char *mqtt_password_file;
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
PGresult *ctl_query(struct ctl *ctl, const char *what, const char *sql, int nparams,
		    const char *const *params);
/* ctl_query() with the parameters' types given (NULL: inferred by PostgreSQL). */
PGresult *ctl_query_typed(struct ctl *ctl, const char *what, const char *sql, int nparams,
			  const Oid *types, const char *const *params);
/* Like ctl_query() for statements whose result is not needed: 0 or -1. */
int ctl_exec(struct ctl *ctl, const char *what, const char *sql, int nparams,
	     const char *const *params);

/* BEGIN: 0 or -1. */
int ctl_begin(struct ctl *ctl);
/* Sends NOTIFY cordon_register with the site as payload and COMMITs, in
 * the transaction that changed the register. 0 or -1 (rolled back). */
int ctl_commit(struct ctl *ctl, const char *site);
/* ROLLBACK if a transaction is open. */
void ctl_rollback(struct ctl *ctl);
/* Creates `site` unless it exists, without a time zone of its own (it
 * follows [site] timezone); in the caller's transaction. 0 or -1. */
int ctl_ensure_site(struct ctl *ctl, const char *site);
/* 1 when `site` exists, 0 when not (an error is printed), -1 on error. */
int ctl_site_exists(struct ctl *ctl, const char *site);

/* ctl_query() with the parameters as arguments: QUERY(ctl, what, sql,
 * p1, p2, ...) (text, NULL = SQL NULL). */
#define QUERY(ctl, what, sql, ...)                                                       \
	ctl_query((ctl), (what), (sql),                                                  \
		  (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
		  (const char *const[]){ __VA_ARGS__ })

/* 1 when household h exists at site s, 0 when not ("unknown household"
 * printed), -1 on error. */
int ctl_household_exists(struct ctl *ctl, const char *site, const char *household);

/* Prints a result as an aligned table with the column names as header. */
void ctl_print_table(PGresult *res);
/* Prints `doc` as indented JSON and a newline, then drops the reference
 * (NULL: out of memory while building it). Returns CTL_OK, or CTL_FAIL
 * after saying "out of memory". */
int ctl_print_json(json_t *doc);
/* The same for the first ncols columns only. */
void ctl_print_columns(PGresult *res, int ncols);

/* Loads the config file again for its [mqtt] and [rules] parts (ctl_open
 * keeps only the connection), with ctl->mqtt_username and
 * mqtt_password_file, when given, in place of [mqtt] username and
 * password_file (the two together: -u without --password-file connects
 * without a password). 0 or -1 after printing why; on success the caller
 * config_finish()es it. */
int ctl_load_config(struct ctl *ctl, struct config *cfg);

/* Connects a synchronous Paho client to [mqtt] uri with the config's
 * username, password_file and TLS files (clean session). Sets *ret_client
 * and returns 0, or returns -1 after printing why. */
int ctl_mqtt_connect(const struct config *cfg, const char *client_id, MQTTClient *ret_client);

/* The options of the commands that connect to the broker (ack, resolve,
 * alerts --follow), for their ctl_opt tables: -u/--username USER and
 * --password-file FILE, as mosquitto_pub's -u (no password on the command
 * line: it would show in ps). */
#define CTL_MQTT_OPTS(ctl)                                                                    \
	{ "-u", &(ctl)->mqtt_username, NULL }, { "--username", &(ctl)->mqtt_username, NULL }, \
	{                                                                                     \
		"--password-file", &(ctl)->mqtt_password_file, NULL                           \
	}
/* Checks them: a user name of 1 to 256 bytes, --password-file only with
 * a user. 0, or -1 after a usage error. */
int ctl_check_mqtt_opts(const struct ctl *ctl, const char *synopsis);

/* The open alerts, critical first, then newest (what `alerts` lists), with
 * kind and site filters (NULL: any). The first CTL_ALERTS_LISTED columns
 * are the listing: raised site kind severity state subject count alert_id,
 * where state is "raised" or "acked", followed by " (silenced #ID until
 * HH:MI)" (another day: "YYYY-MM-DD HH:MI", the site's time) when
 * silence_match() (sql/0010) holds the alert now; then the CTL_ALERT_*
 * columns below. NULL after printing why; PQclear the result. */
PGresult *ctl_open_alerts(struct ctl *ctl, const char *kind, const char *site);
#define CTL_ALERTS_LISTED 8
#define CTL_ALERT_RAISED_EPOCH 8   /* seconds since the epoch */
#define CTL_ALERT_UPDATED_EPOCH 9  /* seconds since the epoch */
#define CTL_ALERT_DETAIL 10	   /* gate, household, card, zone, call, temperature */
#define CTL_ALERT_STATE 11	   /* "raised" or "acked" alone */
#define CTL_ALERT_SILENCE_ID 12	   /* the silence holding it, "" when none */
#define CTL_ALERT_SILENCE_UNTIL 13 /* its end in UTC, 2026-12-01T06:00:00Z, or "" */
#define CTL_ALERT_SILENCE_SHOWN 14 /* its end as the state shows it, or "" */
#define CTL_ALERT_SILENCE_REASON 15

/* Who the operator is, for --by: $USER, else the login name of the real
 * user; NULL when neither is known. */
const char *ctl_whoami(void);

/* Parses a duration argument (config_parse_duration: 90s, 30m, 4h, 2d)
 * into whole seconds within [min_s, max_s]; prints a usage error naming
 * `opt` and returns -1 when it is not one. */
int ctl_parse_seconds(const char *synopsis, const char *opt, const char *s, long long min_s,
		      long long max_s, long long *ret_s);
/* Formats whole seconds as "12h", "30m", "90s" or "2d" (the largest unit
 * that divides them) into buf of len bytes. */
void ctl_format_seconds(long long s, char *buf, size_t len);

/* alerts --follow (ctl_follow.c): the open alerts, then their transitions
 * as they are published, until SIGINT or SIGTERM. Returns the exit code. */
int ctl_follow_alerts(struct ctl *ctl, const char *kind, const char *site);

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
/* ctl_import.c: import residents FILE.csv --site S. */
int ctl_cmd_import_residents(struct ctl *ctl, int argc, char **argv);
/* ctl_people.c: volunteer add|list, household, purge resident. */
int ctl_cmd_volunteer(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_household(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_purge(struct ctl *ctl, int argc, char **argv);
/* ctl_silence.c: silence add|list|expire, and gate maintain (called by
 * ctl_cmd_gate with the words after "maintain"). */
int ctl_cmd_silence(struct ctl *ctl, int argc, char **argv);
int ctl_gate_maintain(struct ctl *ctl, int argc, char **argv);
/* ctl_operator.c: operator add|list|remove|unlock (cordon-web's logins). */
int ctl_cmd_operator(struct ctl *ctl, int argc, char **argv);
/* ctl_cluster.c: cluster [--json], cluster --history [--shard N] [--last N]. */
int ctl_cmd_cluster(struct ctl *ctl, int argc, char **argv);

#endif
