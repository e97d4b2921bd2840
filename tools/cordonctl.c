/* cordonctl.c - the admin CLI: argv, dispatch, and the helpers its
 * commands share (session, argument parsing, queries, tables).
 *
 * Every command parses its arguments before touching the database, so a
 * usage error (exit 2) never needs a working config. Commands that change
 * the register run in one transaction that ends with
 * NOTIFY cordon_register '<site>' (cordond reloads on it); any error rolls
 * the whole transaction back (exit 1). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "db.h"
#include "log.h"
#include "normalize.h"
#include "version.h"

const char tool_name[] = "cordonctl";
const char tool_synopsis_prefix[] = "cordonctl [-c FILE]";

static void
usage(FILE *out)
{
	char formats[256];

	fputs("usage: cordonctl [-c FILE] COMMAND [ARGS]\n"
	      "  -c, --config FILE   configuration file of cordond (default /etc/cordon/cordond.conf);\n"
	      "                      [postgres] conninfo is used, and [mqtt] by ack, resolve\n"
	      "                      and alerts --follow\n"
	      "  -V, --version       print the version and those of the libraries\n"
	      "  -h, --help          this text\n"
	      "\n"
	      "Every command applies pending schema migrations first. Commands that change\n"
	      "the register run in one transaction and notify cordond (NOTIFY cordon_register).\n"
	      "Ids (site, gate, zone, household, card, person, volunteer):\n"
	      "[A-Za-z0-9_-]{1,64}. Phones are shown masked (180****1999).\n"
	      "\n"
	      "commands:\n"
	      "  migrate                            apply migrations, print the schema version\n"
	      "  site add S [--timezone TZ]         create a site (without TZ it follows [site]\n"
	      "                                     timezone); on an existing site, --timezone\n"
	      "                                     changes it\n"
	      "  import households FILE.csv --site S\n"
	      "                                     upsert households and cards from a CSV with the\n"
	      "                                     header household,building,unit,room,size,phone,cards\n"
	      "                                     (cards separated by ';'); all rows or none\n"
	      "  import residents FILE.csv --site S\n"
	      "                                     upsert residents from a CSV with the columns\n"
	      "                                     household,person,born,phone,id_number[,name];\n"
	      "                                     ID numbers kept only as the keyed hash of\n"
	      "                                     [site] id_key_file; all rows or none\n"
	      "  gate add S G [--sealed] [--format F] [--unit c|f|k]\n",
	      out);
	normalize_format_names(formats, sizeof(formats));
	fprintf(out, "                                     formats: %s\n", formats);
	fputs("  gate seal S G | gate open S G      change a gate's state\n"
	      "  gate list [S]                      site gate state format unit\n"
	      "  gate maintain S G --for DURATION [--reason TEXT] [--by NAME]\n"
	      "                                     a maintenance window: a silence of the gate's\n"
	      "                                     gate_silent and sealed_gate alerts (reason\n"
	      "                                     'maintenance' unless given)\n"
	      "  gate maintain S G --end            expire the gate's maintenance windows\n"
	      "  zone add S Z [--interval 4h] [--per-day N]\n"
	      "                                     a disinfection zone and its interval (without\n"
	      "                                     --interval it follows [rules] disinfection_interval);\n"
	      "                                     --per-day: the disinfections a day the report\n"
	      "                                     expects (else 16 h over the interval)\n"
	      "  zone list [S]                      site zone interval\n"
	      "  card add S CARD --household H [--extra [--reason WORD]]\n"
	      "                                     register (or reactivate) a card; --extra marks an\n"
	      "                                     exception such as a carer's card, --reason says\n"
	      "                                     why (carer)\n"
	      "  card revoke S CARD                 revoke a card\n"
	      "  isolate S --household H [--person P] [--days N] [--check-interval 12h]\n"
	      "                                     home isolation order (default 14 days, the whole\n"
	      "                                     household unless --person; without\n"
	      "                                     --check-interval it follows [rules] check_interval)\n"
	      "  release S --household H            end the household's active isolation orders\n"
	      "  volunteer add S V [--team T] [--phone P]\n"
	      "                                     a volunteer of the delivery team\n"
	      "  volunteer list [S]                 site volunteer team phone (masked) active\n"
	      "  household S H [--json] [--last N]  one household's page: register entry,\n"
	      "                                     residents, cards, isolation orders, health\n"
	      "                                     checks, welfare calls, needs, drop-offs,\n"
	      "                                     passes and alerts (the last N, default 10)\n"
	      "  purge resident S P                 delete every row of person P (and of the\n"
	      "                                     hash of its ID number) in one transaction\n"
	      "  alerts [--follow [-u|--username USER [--password-file FILE]] | --json]\n"
	      "         [--kind K] [--site S]\n"
	      "                                     open alerts, critical first, then newest,\n"
	      "                                     silenced ones as 'raised (silenced #ID until\n"
	      "                                     HH:MI)'; --follow then shows their transitions\n"
	      "                                     live (a table on a terminal, else a line each)\n"
	      "  silence add S --kind K [--kind K2 ...] [--subject PATTERN] --for DURATION\n"
	      "              --reason TEXT [--by NAME] [--start TIME]\n"
	      "                                     hold the notifications (cordon-notify) of the\n"
	      "                                     site's alerts of those kinds and subjects (glob:\n"
	      "                                     * and ?) from TIME (YYYY-MM-DD HH:MM, site time;\n"
	      "                                     default now) for DURATION (1m to 30d); --kind\n"
	      "                                     or --subject needed, --kind '*' is every kind.\n"
	      "                                     Alerts are still raised, stored and listed\n"
	      "  silence list [S] [--all] [--json]  silences in force or to come (--all: also\n"
	      "                                     ended and expired ones) and the open alerts\n"
	      "                                     each one holds now\n"
	      "  silence expire ID                  end a silence now\n"
	      "  ack ID [--by NAME] [--note TEXT] [--wait SECONDS | --no-wait]\n"
	      "         [-u|--username USER [--password-file FILE]]\n"
	      "                                     acknowledge an open alert (published on\n"
	      "                                     <topic_root>/<site>/ack; --by defaults to $USER)\n"
	      "                                     and wait (10 s) until cordond has acked it\n"
	      "  resolve ID [--by NAME] [--note TEXT] [--wait SECONDS | --no-wait]\n"
	      "         [-u|--username USER [--password-file FILE]]\n"
	      "                                     resolve an open alert the same way\n"
	      "  operator add NAME [--role viewer|operator|admin] [--site S]... [--password-file F]\n"
	      "                                     who may log in to the console (cordon-web):\n"
	      "                                     role operator by default; only the sites given\n"
	      "                                     (every site without --site); the password from\n"
	      "                                     the file's first line, else asked twice (at\n"
	      "                                     least 8 bytes). An existing NAME is replaced:\n"
	      "                                     role, sites and password, its sessions ended\n"
	      "  operator list [--json]             name role sites sessions locked\n"
	      "  operator remove NAME               remove an operator and end its sessions\n"
	      "  operator unlock NAME               end a lock-out after failed logins (any name)\n"
	      "  cluster [--json]                   the instances sharing the sites ([cluster]\n"
	      "                                     shards > 0): state, since when, shards owned,\n"
	      "                                     metrics address; then each shard's owner,\n"
	      "                                     epoch, lease expiry and registered sites\n"
	      "  cluster --history [--shard N] [--last N] [--json]\n"
	      "                                     the leases held, newest first (default 50)\n"
	      "  stats                              rows per event table, rejects by reason,\n"
	      "                                     open alerts by kind, spool checkpoints\n"
	      "  report daily [--date YYYY-MM-DD] [--site S] [--csv]\n"
	      "                                     the day's gates, zones (done and expected),\n"
	      "                                     isolation checks, health checks and welfare\n"
	      "                                     calls due and done, needs, drop-offs, hotline\n"
	      "                                     calls, alerts and rejected payloads per site\n"
	      "\n"
	      "\n"
	      "ack, resolve and alerts --follow connect to the broker as [mqtt] username with\n"
	      "the password of [mqtt] password_file, or with -u USER (--username USER) as\n"
	      "USER (config/mosquitto.acl: an operator-NAME), with the password on the first\n"
	      "line of --password-file FILE (none without it; never on the command line).\n"
	      "\n"
	      "exit status: 0 done, 1 failed (nothing changed), 2 usage error\n",
	      out);
}

/* ---------------------------------------------------------------- arguments */

int
ctl_check_id(const char *synopsis, const char *what, const char *s)
{
	if (tool_valid_id(s))
		return 0;
	tool_usage(synopsis, "bad %s id '%.80s': use 1 to 64 of A-Z a-z 0-9 _ -", what, s);
	return -1;
}

int
ctl_parse(const char *synopsis, int argc, char **argv, const struct ctl_opt *opts, const char **pos,
	  int min_pos, int max_pos)
{
	int npos = 0, options_done = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const struct ctl_opt *o;
		const char *eq;
		size_t len;

		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (npos >= max_pos) {
				tool_usage(synopsis, "unexpected argument '%.80s'", arg);
				return -1;
			}
			pos[npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = 1;
			continue;
		}
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		for (o = opts; o && o->name; o++)
			if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0)
				break;
		if (!o || !o->name) {
			tool_usage(synopsis, "unknown option '%.*s'", (int)len, arg);
			return -1;
		}
		if (o->flag) {
			if (eq) {
				tool_usage(synopsis, "option %s takes no value", o->name);
				return -1;
			}
			if (*o->flag) {
				tool_usage(synopsis, "option %s given twice", o->name);
				return -1;
			}
			*o->flag = 1;
			continue;
		}
		if (*o->value) {
			tool_usage(synopsis, "option %s given twice", o->name);
			return -1;
		}
		if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			tool_usage(synopsis, "option %s needs a value", o->name);
			return -1;
		}
	}
	if (npos < min_pos) {
		tool_usage(synopsis, "missing arguments");
		return -1;
	}
	return npos;
}

/* ---------------------------------------------------------------- database */

int
ctl_open(struct ctl *ctl)
{
	struct config cfg;
	char errbuf[1024];
	int rc;

	if ((rc = config_init(&cfg)) < 0) {
		tool_err("%s", config_init_strerror(rc));
		return -1;
	}
	rc = config_load(&cfg, ctl->config_path, stderr);
	if (rc < 0) {
		config_finish(&cfg);
		tool_err("invalid configuration in %s", ctl->config_path);
		return -1;
	}
	ctl->conn = db_connect(cfg.pg_conninfo, "cordonctl");
	snprintf(ctl->default_tz, sizeof(ctl->default_tz), "%s", cfg.site_timezone);
	ctl->check_interval_s = cfg.check_interval / 1000;
	ctl->disinfection_interval_s = cfg.disinfection_interval / 1000;
	ctl->id_key_file = strdup(cfg.id_key_file ? cfg.id_key_file : "");
	config_finish(&cfg);
	if (!ctl->conn || !ctl->id_key_file) {
		tool_err("out of memory");
		return -1;
	}
	if (PQstatus(ctl->conn) != CONNECTION_OK) {
		char *msg = PQerrorMessage(ctl->conn);
		size_t n = strlen(msg);

		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			n--;
		tool_err("cannot connect to PostgreSQL: %.*s", (int)n, msg);
		return -1;
	}
	if (PQsetClientEncoding(ctl->conn, "UTF8") != 0) {
		tool_err("cannot set the client encoding to UTF8");
		return -1;
	}
	ctl->schema_version = db_migrate(ctl->conn, errbuf, sizeof(errbuf), NULL);
	if (ctl->schema_version < 0) {
		tool_err("applying migrations: %s", errbuf);
		return -1;
	}
	return 0;
}

void
ctl_close(struct ctl *ctl)
{
	free(ctl->id_key_file);
	ctl->id_key_file = NULL;
	if (!ctl->conn)
		return;
	ctl_rollback(ctl);
	PQfinish(ctl->conn);
	ctl->conn = NULL;
}

/* Prints PostgreSQL's message for a failed result, without its trailing
 * newline; the primary message only (the detail repeats data). */
static void
print_pg_error(struct ctl *ctl, const char *what, PGresult *res)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *full = msg ? msg : PQerrorMessage(ctl->conn);
	size_t n = strlen(full);

	while (n > 0 && (full[n - 1] == '\n' || full[n - 1] == ' '))
		n--;
	tool_err("%s: %.*s", what, (int)n, n ? full : "unknown error");
}

PGresult *
ctl_query_typed(struct ctl *ctl, const char *what, const char *sql, int nparams, const Oid *types,
		const char *const *params)
{
	PGresult *res = PQexecParams(ctl->conn, sql, nparams, types, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	print_pg_error(ctl, what, res);
	PQclear(res);
	return NULL;
}

PGresult *
ctl_query(struct ctl *ctl, const char *what, const char *sql, int nparams,
	  const char *const *params)
{
	return ctl_query_typed(ctl, what, sql, nparams, NULL, params);
}

int
ctl_exec(struct ctl *ctl, const char *what, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = ctl_query(ctl, what, sql, nparams, params);

	PQclear(res);
	return res ? 0 : -1;
}

int
ctl_begin(struct ctl *ctl)
{
	if (ctl_exec(ctl, "BEGIN", "BEGIN", 0, NULL) < 0)
		return -1;
	ctl->in_tx = 1;
	return 0;
}

int
ctl_commit(struct ctl *ctl, const char *site)
{
	const char *params[] = { site };

	if (ctl_exec(ctl, "notifying cordond", "SELECT pg_notify('cordon_register', $1)", 1,
		     params) < 0 ||
	    ctl_exec(ctl, "COMMIT", "COMMIT", 0, NULL) < 0) {
		ctl_rollback(ctl);
		return -1;
	}
	ctl->in_tx = 0;
	return 0;
}

void
ctl_rollback(struct ctl *ctl)
{
	if (ctl->in_tx && ctl->conn)
		PQclear(PQexec(ctl->conn, "ROLLBACK"));
	ctl->in_tx = 0;
}

int
ctl_ensure_site(struct ctl *ctl, const char *site)
{
	const char *params[] = { site };

	return ctl_exec(ctl, "creating the site",
			"INSERT INTO sites (site) VALUES ($1) ON CONFLICT (site) DO NOTHING", 1,
			params);
}

int
ctl_site_exists(struct ctl *ctl, const char *site)
{
	const char *params[] = { site };
	PGresult *res = ctl_query(ctl, "looking up the site", "SELECT 1 FROM sites WHERE site = $1",
				  1, params);
	int found;

	if (!res)
		return -1;
	found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
		tool_err("unknown site %s", site);
	return found;
}

/* ---------------------------------------------------------------- output */

int
ctl_print_json(json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;

	json_decref(doc);
	if (!text) {
		tool_err("out of memory");
		return CTL_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return CTL_OK;
}

void
ctl_print_table(PGresult *res)
{
	ctl_print_columns(res, PQnfields(res));
}

void
ctl_print_columns(PGresult *res, int ncols)
{
	int nrows = PQntuples(res);
	int width[16] = { 0 };

	if (ncols > PQnfields(res))
		ncols = PQnfields(res);
	if (ncols > 16)
		ncols = 16;
	for (int c = 0; c < ncols; c++) {
		width[c] = (int)strlen(PQfname(res, c));
		for (int r = 0; r < nrows; r++)
			if (PQgetlength(res, r, c) > width[c])
				width[c] = PQgetlength(res, r, c);
	}
	for (int r = -1; r < nrows; r++) {
		for (int c = 0; c < ncols; c++) {
			const char *v = r < 0 ? PQfname(res, c) : PQgetvalue(res, r, c);

			if (c == ncols - 1)
				printf("%s\n", v);
			else
				printf("%-*s  ", width[c], v);
		}
	}
}

/* ---------------------------------------------------------------- main */

static int
cmd_migrate(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];

	if (ctl_parse("migrate", argc, argv, NULL, pos, 0, 0) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	printf("schema version %d\n", ctl->schema_version);
	return CTL_OK;
}

static int
cmd_import_words(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "households") == 0)
		return ctl_cmd_import(ctl, argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "residents") == 0)
		return ctl_cmd_import_residents(ctl, argc - 1, argv + 1);
	return tool_usage("import households|residents FILE.csv --site S",
			  "import what? ('households' or 'residents')");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		const char *name;
		int (*run)(struct ctl *ctl, int argc, char **argv);
	} commands[] = {
		{ "migrate", cmd_migrate },	    { "site", ctl_cmd_site },
		{ "import", cmd_import_words },	    { "gate", ctl_cmd_gate },
		{ "zone", ctl_cmd_zone },	    { "card", ctl_cmd_card },
		{ "isolate", ctl_cmd_isolate },	    { "release", ctl_cmd_release },
		{ "alerts", ctl_cmd_alerts },	    { "ack", ctl_cmd_ack },
		{ "resolve", ctl_cmd_resolve },	    { "stats", ctl_cmd_stats },
		{ "report", ctl_cmd_report },	    { "volunteer", ctl_cmd_volunteer },
		{ "household", ctl_cmd_household }, { "purge", ctl_cmd_purge },
		{ "silence", ctl_cmd_silence },	    { "operator", ctl_cmd_operator },
		{ "cluster", ctl_cmd_cluster },
	};
	struct ctl ctl = { .config_path = "/etc/cordon/cordond.conf" };
	int c, rc;

	/* "+": stop at the command, whose own options follow it. */
	while ((c = getopt_long(argc, argv, "+c:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ctl.config_path = optarg; break;
		case 'V': version_print(stdout, "cordonctl"); return CTL_OK;
		case 'h': usage(stdout); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind == argc)
		return tool_usage(NULL, "no command given");
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	log_init();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		rc = commands[i].run(&ctl, argc - optind - 1, argv + optind + 1);
		ctl_close(&ctl);
		return rc;
	}
	return tool_usage(NULL, "unknown command '%.80s'", argv[optind]);
}
