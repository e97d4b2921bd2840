/* ctl_operator.c - cordonctl operator add|list|remove|unlock: who may log
 * in to the console (cordon-web, docs/web.md; sql/0011 operators). The
 * password is read from --password-file (its first line) or asked twice
 * without echo on a terminal, and stored as libsodium's Argon2id string
 * (web_auth_hash, the hash cordon-web checks). `add` on an existing name
 * replaces its role, sites and password, and ends its sessions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "config.h"
#include "ctl.h"
#include "web.h"

#define OPERATOR_ADD \
	"operator add NAME [--role viewer|operator|admin] [--site S]... [--password-file F]"
#define OPERATOR_LIST "operator list [--json]"
#define OPERATOR_REMOVE "operator remove NAME"
#define OPERATOR_UNLOCK "operator unlock NAME"
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define MAX_SITES 64

static const struct ctl_opt none[] = { { NULL, NULL, NULL } };

/* Reads one line from `f` without its end into buf (len bytes); 0, or -1
 * when there is none or it is too long. */
static int
read_line(FILE *f, char *buf, size_t len)
{
	size_t n;

	if (!fgets(buf, (int)len, f))
		return -1;
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(f))
		return -1;
	if (n && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int
prompt(const char *what, char *buf, size_t len)
{
	struct termios old, quiet;
	int rc;

	fprintf(stderr, "%s: ", what);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
		return -1;
	rc = read_line(stdin, buf, len);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/* The password into buf: from `file`, else asked twice on the terminal.
 * 0, or CTL_USAGE / CTL_FAIL after saying why. */
static int
get_password(const char *file, char *buf, size_t len)
{
	if (file) {
		FILE *f = fopen(file, "re");
		int rc;

		if (!f) {
			tool_err("cannot read --password-file %s: %s", file, strerror(errno));
			return CTL_FAIL;
		}
		rc = read_line(f, buf, len);
		fclose(f);
		if (rc < 0) {
			tool_err("--password-file %s: no first line, or it is over %d bytes", file,
				 PASSWORD_MAX);
			return CTL_FAIL;
		}
	} else {
		char again[PASSWORD_MAX + 2];
		int same;

		if (!isatty(STDIN_FILENO))
			return tool_usage(
				OPERATOR_ADD,
				"no terminal to ask the password on: give --password-file");
		if (prompt("password", buf, len) < 0 || prompt("again", again, sizeof(again)) < 0) {
			tool_err("no password read");
			return CTL_FAIL;
		}
		same = strcmp(buf, again) == 0;
		sodium_memzero(again, sizeof(again));
		if (!same) {
			tool_err("the two passwords differ");
			return CTL_FAIL;
		}
	}
	if (strlen(buf) < PASSWORD_MIN) {
		tool_err("the password must have at least %d bytes", PASSWORD_MIN);
		return CTL_FAIL;
	}
	return 0;
}

/* Takes every "--site S" / "--site=S" out of argv into sites; the rest into
 * rest. Returns how many, or -1 after a usage error. */
static int
take_sites(int argc, char **argv, const char **sites, char **rest, int *ret_nrest)
{
	int ns = 0, nr = 0;
	bool done = false;

	for (int i = 0; i < argc; i++) {
		const char *v = NULL;

		if (strcmp(argv[i], "--") == 0)
			done = true;
		if (!done && strcmp(argv[i], "--site") == 0) {
			if (i + 1 == argc) {
				tool_usage(OPERATOR_ADD, "option --site needs a value");
				return -1;
			}
			v = argv[++i];
		} else if (!done && strncmp(argv[i], "--site=", 7) == 0) {
			v = argv[i] + 7;
		} else {
			rest[nr++] = argv[i];
			continue;
		}
		if (ns == MAX_SITES) {
			tool_usage(OPERATOR_ADD, "more than %d --site", MAX_SITES);
			return -1;
		}
		if (ctl_check_id(OPERATOR_ADD, "site", v) < 0)
			return -1;
		sites[ns++] = v;
	}
	*ret_nrest = nr;
	return ns;
}

static int
operator_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *role = NULL, *pwfile = NULL, *sites[MAX_SITES];
	const struct ctl_opt opts[] = {
		{ "--role", &role, NULL },
		{ "--password-file", &pwfile, NULL },
		{ NULL, NULL, NULL },
	};
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	char password[PASSWORD_MAX + 2], hash[WEB_PWHASH_LEN];
	enum web_role r = WEB_OPERATOR;
	json_t *arr;
	char *sites_json;
	PGresult *res;
	int ns, nrest = 0, rc;

	if (!rest)
		return CTL_FAIL;
	ns = take_sites(argc, argv, sites, rest, &nrest);
	if (ns < 0 || ctl_parse(OPERATOR_ADD, nrest, rest, opts, pos, 1, 1) < 0) {
		free(rest);
		return CTL_USAGE;
	}
	free(rest);
	if (!web_name_is_valid(pos[0]))
		return tool_usage(OPERATOR_ADD, "bad name '%.80s': 1 to 64 of A-Z a-z 0-9 _ . @ -",
				  pos[0]);
	if (role && web_role_parse(role, &r) < 0)
		return tool_usage(OPERATOR_ADD, "bad --role '%.80s': viewer, operator or admin",
				  role);
	rc = get_password(pwfile, password, sizeof(password));
	if (rc)
		return rc;
	if (sodium_init() < 0 || web_auth_hash(password, hash) < 0) {
		sodium_memzero(password, sizeof(password));
		tool_err("cannot hash the password (out of memory?)");
		return CTL_FAIL;
	}
	sodium_memzero(password, sizeof(password));
	arr = json_array();
	for (int i = 0; arr && i < ns; i++)
		json_array_append_new(arr, json_string(sites[i]));
	sites_json = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	if (!sites_json || ctl_open(ctl) < 0) {
		free(sites_json);
		return CTL_FAIL;
	}
	for (int i = 0; i < ns; i++)
		if (ctl_site_exists(ctl, sites[i]) != 1) {
			free(sites_json);
			return CTL_FAIL;
		}
	if (ctl_begin(ctl) < 0) {
		free(sites_json);
		return CTL_FAIL;
	}
	res = QUERY(
		ctl, "adding the operator",
		"INSERT INTO operators (name, role, sites, pwhash)"
		" VALUES ($1, $2, ARRAY(SELECT DISTINCT json_array_elements_text($3::json)"
		"                        ORDER BY 1), $4)"
		" ON CONFLICT (name) DO UPDATE SET role = excluded.role, sites = excluded.sites,"
		"   pwhash = excluded.pwhash, updated_at = now()"
		" RETURNING (xmax <> 0)",
		pos[0], web_role_name(r), sites_json, hash);
	free(sites_json);
	sodium_memzero(hash, sizeof(hash));
	if (!res) {
		ctl_rollback(ctl);
		return CTL_FAIL;
	}
	rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	/* A replaced operator logs in again with the new password. */
	if (ctl_exec(ctl, "ending the sessions", "DELETE FROM web_sessions WHERE operator = $1", 1,
		     (const char *const[]){ pos[0] }) < 0 ||
	    ctl_exec(ctl, "committing", "COMMIT", 0, NULL) < 0) {
		ctl_rollback(ctl);
		return CTL_FAIL;
	}
	ctl->in_tx = 0;
	printf("operator %s %s: %s, %s\n", pos[0], rc ? "replaced" : "added", web_role_name(r),
	       ns ? "the sites given" : "every site");
	return CTL_OK;
}

static int
operator_list(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];
	int json = 0;
	const struct ctl_opt opts[] = { { "--json", NULL, &json }, { NULL, NULL, NULL } };
	PGresult *res;
	int rc = CTL_OK;

	if (ctl_parse(OPERATOR_LIST, argc, argv, opts, pos, 0, 0) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = ctl_query(
		ctl, "listing the operators",
		"SELECT o.name, o.role,"
		"       CASE WHEN cardinality(o.sites) = 0 THEN '*'"
		"            ELSE array_to_string(o.sites, ',') END AS sites,"
		"       (SELECT count(*) FROM web_sessions s WHERE s.operator = o.name"
		"           AND s.expires_at > now()) AS sessions,"
		"       coalesce(CASE WHEN l.locked_until > now() THEN 'locked until '"
		"         || to_char(l.locked_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
		"         || 'Z' END, '') AS locked,"
		"       array_to_json(o.sites)::text"
		"  FROM operators o LEFT JOIN web_lockouts l ON l.name = o.name"
		" ORDER BY o.name",
		0, NULL);
	if (!res)
		return CTL_FAIL;
	if (json) {
		json_t *arr = json_array();

		for (int i = 0; arr && i < PQntuples(res); i++)
			json_array_append_new(
				arr,
				json_pack("{s:s, s:s, s:o, s:I, s:b}", "name",
					  PQgetvalue(res, i, 0), "role", PQgetvalue(res, i, 1),
					  "sites", json_loads(PQgetvalue(res, i, 5), 0, NULL),
					  "sessions", (json_int_t)atoll(PQgetvalue(res, i, 3)),
					  "locked", *PQgetvalue(res, i, 4) != '\0'));
		rc = ctl_print_json(arr);
	} else if (PQntuples(res) == 0) {
		printf("no operators\n");
	} else {
		ctl_print_columns(res, 5);
	}
	PQclear(res);
	return rc;
}

static int
operator_remove(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];
	PGresult *res;
	int n;

	if (ctl_parse(OPERATOR_REMOVE, argc, argv, none, pos, 1, 1) < 0)
		return CTL_USAGE;
	if (!web_name_is_valid(pos[0]))
		return tool_usage(OPERATOR_REMOVE, "bad name '%.80s'", pos[0]);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	/* Its sessions go with it (ON DELETE CASCADE). */
	res = QUERY(ctl, "removing the operator", "DELETE FROM operators WHERE name = $1", pos[0]);
	if (!res)
		return CTL_FAIL;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 0) {
		tool_err("no operator %s", pos[0]);
		return CTL_FAIL;
	}
	printf("operator %s removed, its sessions ended\n", pos[0]);
	return CTL_OK;
}

static int
operator_unlock(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];
	PGresult *res;
	int n;

	if (ctl_parse(OPERATOR_UNLOCK, argc, argv, none, pos, 1, 1) < 0)
		return CTL_USAGE;
	if (!*pos[0] || strlen(pos[0]) > 256)
		return tool_usage(OPERATOR_UNLOCK, "bad name '%.80s'", pos[0]);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "unlocking", "DELETE FROM web_lockouts WHERE name = $1", pos[0]);
	if (!res)
		return CTL_FAIL;
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	printf("%s: %s\n", pos[0], n ? "unlocked (failed logins forgotten)" : "was not locked");
	return CTL_OK;
}

int
ctl_cmd_operator(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return operator_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return operator_list(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "remove") == 0)
		return operator_remove(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "unlock") == 0)
		return operator_unlock(ctl, argc - 1, argv + 1);
	return tool_usage(OPERATOR_ADD "\n       " OPERATOR_LIST "\n       " OPERATOR_REMOVE
				       "\n       " OPERATOR_UNLOCK,
			  "operator: expected add, list, remove or unlock");
}
