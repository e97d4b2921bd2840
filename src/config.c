/* config.c - INI configuration through one key table.
 *
 * The table below is the single list of keys: defaults are applied by
 * parsing their text through the same code as the file's values, so a
 * default can never bypass validation; --check-config prints from it; and
 * a unit test checks that every key is documented in docs/config.md and
 * config/cordond.conf. Parsing uses libinih with a line-counting reader so
 * that every error names FILE:LINE. */
#include "config.h"
#include "normalize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#include "config_keys.h"
#include "spool.h"
#include "temp.h"
#include "tz.h"

#define OFF(f) offsetof(struct config, f)

const struct config_key config_keys[] = {
	{ "mqtt", "uri", KEY_URIS, OFF(mqtt_uri), "tcp://127.0.0.1:1883", 0, 0, 0,
	  "broker URI tcp://host:port, or ssl://host:port for TLS; or a comma-separated list of"
	  " a clustered broker's nodes: after a lost connection or a failed connect, the next is"
	  " tried" },
	{ "mqtt", "client_id", KEY_STRING, OFF(mqtt_client_id), "cordond", 0, 0, 0,
	  "fixed MQTT client id; also names this instance and its spool checkpoint" },
	{ "mqtt", "username", KEY_STRING, OFF(mqtt_username), "", 0, 0, 0,
	  "MQTT user name (empty: none); cordon-notify's and cordon-web's too unless [notify] or [web] username is set" },
	{ "mqtt", "password_file", KEY_STRING, OFF(mqtt_password_file), "", 0, 0, 0,
	  "file holding the MQTT password (empty: none); goes with username" },
	{ "mqtt", "ca_file", KEY_STRING, OFF(mqtt_ca_file), "", 0, 0, 0,
	  "CA certificate file for ssl:// URIs" },
	{ "mqtt", "cert_file", KEY_STRING, OFF(mqtt_cert_file), "", 0, 0, 0,
	  "client certificate file for ssl:// URIs (empty: none)" },
	{ "mqtt", "key_file", KEY_STRING, OFF(mqtt_key_file), "", 0, 0, 0,
	  "client private key file for ssl:// URIs (empty: none)" },
	{ "mqtt", "topic_root", KEY_TOPIC, OFF(topic_root), "cordon", 0, 0, 0,
	  "first level of every topic" },
	{ "mqtt", "keepalive", KEY_DURATION, OFF(mqtt_keepalive), "30s", 1000, 3600000, 0,
	  "MQTT keepalive interval" },
	{ "mqtt", "session_expiry", KEY_DURATION, OFF(mqtt_session_expiry), "7d", 0,
	  4294967295000LL, 0,
	  "how long the broker keeps our session and queued messages while we are away" },

	{ "postgres", "conninfo", KEY_STRING, OFF(pg_conninfo), "dbname=cordon", 0, 0, 0,
	  "the libpq connection string; passwords belong in a passfile, not here" },
	{ "postgres", "batch_rows", KEY_INT, OFF(pg_batch_rows), "5000", 1, 100000, 1,
	  "most events written in one transaction" },

	{ "spool", "dir", KEY_STRING, OFF(spool_dir), "/var/lib/cordon/spool", 0, 0, 0,
	  "directory of the local spool (segments and checkpoint)" },
	{ "spool", "max_bytes", KEY_SIZE, OFF(spool_max_bytes), "1GiB", 1048576, INT64_MAX, 1,
	  "spool size at which cordond stops taking messages from the broker" },
	{ "spool", "segment_bytes", KEY_SIZE, OFF(spool_segment_bytes), "64MiB", 65536, 1073741824,
	  0, "size at which the spool starts a new segment file" },
	{ "spool", "sync", KEY_SYNC, OFF(spool_sync), "interval", 0, 0, 1,
	  "when the spool is fdatasync'ed: every sync_interval (interval), each message before"
	  " its PUBACK (always), or when the kernel writes it back (off)" },
	{ "spool", "sync_interval", KEY_DURATION, OFF(spool_sync_interval), "100ms", 1, 60000, 1,
	  "with sync = interval: the most acknowledged messages a power loss can take" },

	{ "site", "timezone", KEY_TIMEZONE, OFF(site_timezone), "Asia/Shanghai", 0, 0, 1,
	  "time zone of naive local device times at sites without a zone of their own" },
	{ "site", "max_clock_skew", KEY_DURATION, OFF(max_clock_skew), "10m", 0, 86400000, 1,
	  "device clock error beyond which the receive time is used for rules" },
	{ "site", "id_key_file", KEY_STRING, OFF(id_key_file), "", 0, 0, 0,
	  "file holding the secret key that hashes national ID numbers (empty: such numbers are dropped)" },
	{ "site", "max_payload", KEY_SIZE, OFF(max_payload), "64KiB", 1024, 1048576, 0,
	  "largest payload accepted; larger ones are rejected and stored truncated" },
	{ "site", "retention_days", KEY_INT, OFF(retention_days), "90", 0, 36500, 1,
	  "event rows whose device time is older than this many days are removed hourly (0: kept)" },

	{ "rules", "fever_c", KEY_TEMP, OFF(fever_c), "37.3", 0, 0, 1,
	  "body temperature (degrees C) from which a reading is a fever" },
	{ "rules", "critical_c", KEY_TEMP, OFF(critical_c), "38.5", 0, 0, 1,
	  "temperature from which a fever alert is critical" },
	{ "rules", "recheck_window", KEY_DURATION, OFF(recheck_window), "30m", 0, 86400000, 1,
	  "a normal re-check of a fever's subject within this time resolves it" },
	{ "rules", "check_interval", KEY_DURATION, OFF(check_interval), "12h", 60000, 604800000, 1,
	  "isolation health checks are due this often (orders made without --check-interval)" },
	{ "rules", "check_grace", KEY_DURATION, OFF(check_grace), "1h", 0, 86400000, 1,
	  "how late a check may be before isolation_overdue" },
	{ "rules", "silence_timeout", KEY_DURATION, OFF(silence_timeout), "5m", 1000, 86400000, 1,
	  "an active gate with no message for this long raises gate_silent" },
	{ "rules", "exit_quota", KEY_INT, OFF(exit_quota), "0", 0, 63, 1,
	  "outward passes a household may make per exit_window (0: off)" },
	{ "rules", "exit_window", KEY_DURATION, OFF(exit_window), "48h", 60000, 604800000, 1,
	  "the window of exit_quota" },
	{ "rules", "disinfection_interval", KEY_DURATION, OFF(disinfection_interval), "4h", 60000,
	  604800000, 1,
	  "zones made without --interval must be disinfected this often (06:00-22:00 local)" },
	{ "rules", "hotline_medical_limit", KEY_DURATION, OFF(hotline_medical_limit), "30m", 1000,
	  604800000, 1, "an urgent medical call open longer raises hotline_unresolved" },
	{ "rules", "hotline_other_limit", KEY_DURATION, OFF(hotline_other_limit), "4h", 1000,
	  604800000, 1,
	  "an urgent call of another category open longer raises hotline_unresolved" },
	{ "rules", "repeat_interval", KEY_DURATION, OFF(repeat_interval), "60s", 0, 86400000, 1,
	  "an open alert's repeated triggers are republished at most this often" },
	{ "rules", "max_open_alerts", KEY_INT, OFF(max_open_alerts), "100", 1, 100000, 1,
	  "open alerts per site and kind; past it new subjects fold into one aggregate alert" },
	{ "rules", "cards_per_household", KEY_INT, OFF(cards_per_household), "1", 0, 1000, 1,
	  "active ordinary (not extra) cards a household may hold; more raises card_exception"
	  " (0: off)" },
	{ "rules", "need_assign_limit", KEY_DURATION, OFF(need_assign_limit), "2h", 1000, 604800000,
	  1, "a need not assigned to a volunteer this long after its open raises need_overdue" },
	{ "rules", "call_deadline", KEY_TIME_OF_DAY, OFF(call_deadline), "20:00", 0, 0, 1,
	  "site time by which each isolated household must be reached by its daily welfare call" },
	{ "rules", "dropoff_limit", KEY_DURATION, OFF(dropoff_limit), "2h", 1000, 604800000, 1,
	  "a delivery for an isolated household uncollected this long raises dropoff_uncollected" },

	{ "daemon", "shutdown_timeout", KEY_DURATION, OFF(shutdown_timeout), "20s", 0, 3600000, 1,
	  "on SIGTERM, how long to keep draining the spool into PostgreSQL" },

	{ "metrics", "listen", KEY_STRING, OFF(metrics_listen), "127.0.0.1:9478", 0, 0, 0,
	  "address of the Prometheus /metrics and /healthz endpoint, or off" },

	{ "cluster", "shards", KEY_INT, OFF(cluster_shards), "16", 0, 256, 0,
	  "split the sites into this many shards shared by the instances on one database (0: not"
	  " clustered: one instance alone); the same on every instance" },
	{ "cluster", "discovery", KEY_BOOL, OFF(cluster_discovery), "yes", 0, 0, 0,
	  "shard 0's owner also takes every site nobody registered (and each registered site"
	  " until its own shard took it over); the same on every instance" },
	{ "cluster", "lease_time", KEY_DURATION, OFF(cluster_lease_time), "10s", 3000, 60000, 0,
	  "how long a shard's lease lasts unrenewed: a dead instance's shards are taken over after it" },
	{ "cluster", "session_prefix", KEY_TOPIC, OFF(cluster_session_prefix), "cordon-shard-", 0,
	  0, 0,
	  "MQTT client id of shard N is this prefix and N (3 digits); the same on every instance" },

	{ "log", "level", KEY_LEVEL, OFF(log_level), "info", 0, 0, 1,
	  "the least severe messages logged: error, warning, notice, info or debug" },
	{ NULL, NULL, 0, 0, NULL, 0, 0, 0, NULL },
};

static const char *const sync_names[] = {
	[SPOOL_SYNC_OFF] = "off",
	[SPOOL_SYNC_INTERVAL] = "interval",
	[SPOOL_SYNC_ALWAYS] = "always",
};

static const struct config_key *
find_key(const char *section, const char *name)
{
	for (const struct config_key *k = config_keys; k->section; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* Splits "12.5" + unit; returns the number of chars of the number or -1. */
static int
parse_number(const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		return -1;
	*ret = v;
	return (int)(end - s);
}

int
config_set_string(char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

const char *
config_set_duration(int64_t *field, const char *value, int64_t min, int64_t max)
{
	int64_t ms;

	if (strcmp(value, "0") == 0)
		ms = 0; /* "off", where the range allows it */
	else if (config_parse_duration(value, &ms) < 0)
		return "not a duration (e.g. 30s, 15m, 12h)";
	if (ms < min || ms > max)
		return "out of range";
	*field = ms;
	return NULL;
}

int
config_parse_listen(const char *s, struct sockaddr_storage *ret)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	size_t hl;
	long port;
	char *end;

	memset(ret, 0, sizeof(*ret));
	if (!colon || colon == s || (hl = (size_t)(colon - s)) >= sizeof(host))
		return -EINVAL;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port <= 0 || port > 65535)
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ret;

		host[hl - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? AF_INET6 : -EINVAL;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ret;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") == 0) {
			a->sin_addr.s_addr = htonl(INADDR_ANY);
			return AF_INET;
		}
		if (strcmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? AF_INET : -EINVAL;
	}
}

/* One URI of [mqtt] uri, blanks already trimmed: NULL or the reason. */
static const char *
check_uri(const char *u, bool *ret_tls)
{
	const char *host, *end, *colon = NULL;

	if (strncmp(u, "tcp://", 6) == 0)
		*ret_tls = false;
	else if (strncmp(u, "ssl://", 6) == 0)
		*ret_tls = true;
	else
		return "each URI must start with tcp:// or ssl:// (e.g. tcp://broker-1:1883)";
	host = u + 6;
	if (*host == '[') {
		end = host + 1 + strspn(host + 1, "0123456789abcdefABCDEF:.");
		if (*end != ']' || end == host + 1)
			return "an IPv6 host is written [address] (e.g. tcp://[::1]:1883)";
		end++;
	} else {
		end = host +
			strspn(host,
			       "abcdefghijklmnopqrstuvwxyz"
			       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
		if (end == host)
			return "a URI has no host (e.g. tcp://broker-1:1883)";
	}
	if (*end == ':')
		colon = end;
	else if (*end)
		return "a URI is scheme://host:port, with nothing after the port";
	if (colon) {
		char *pend;
		long port;

		errno = 0;
		port = strtol(colon + 1, &pend, 10);
		if (errno || pend == colon + 1 || *pend || colon[1] == '+' || colon[1] == '-' ||
		    port < 1 || port > 65535)
			return "a port must be 1 to 65535, with nothing after it";
	}
	return NULL;
}

const char *
config_parse_uris(const char *list, struct config_uris *ret)
{
	struct config_uris u = { 0 };
	char *p;
	const char *why = NULL;

	memset(ret, 0, sizeof(*ret));
	u.buf = strdup(list);
	if (!u.buf)
		return "out of memory";
	p = u.buf;
	for (;;) {
		char *comma = strchr(p, ',');
		char *end = comma ? comma : p + strlen(p);
		bool tls;

		while (*p == ' ' || *p == '\t')
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (comma)
			*comma = '\0';
		*end = '\0';
		if (!*p) {
			why = "an empty URI: a list is URIs separated by single commas";
			break;
		}
		if (u.count == CONFIG_MAX_URIS) {
			why = "more than 16 URIs";
			break;
		}
		why = check_uri(p, &tls);
		if (why)
			break;
		if (u.count > 0 && tls != u.tls) {
			why = "all URIs must use one scheme: all tcp:// or all ssl://";
			break;
		}
		u.tls = tls;
		u.uri[u.count++] = p;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (why) {
		free(u.buf);
		return why;
	}
	*ret = u;
	return NULL;
}

void
config_uris_free(struct config_uris *u)
{
	if (!u)
		return;
	free(u->buf);
	memset(u, 0, sizeof(*u));
}

int
config_parse_duration(const char *s, int64_t *ret_ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {
		{ "ms", 1 },	  { "s", 1000 },    { "m", 60000 },
		{ "min", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	double v;
	int n = parse_number(s, &v);

	if (n < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].unit) == 0) {
			double ms = v * units[i].ms;

			if (ms > (double)INT64_MAX / 2)
				return -ERANGE;
			*ret_ms = (int64_t)llround(ms);
			return 0;
		}
	}
	return -EINVAL;
}

int
config_parse_size(const char *s, int64_t *ret_bytes)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "KiB", 1024.0 },
		{ "MiB", 1048576.0 },
		{ "GiB", 1073741824.0 },
		{ "TiB", 1099511627776.0 },
		{ "kB", 1e3 },
		{ "MB", 1e6 },
		{ "GB", 1e9 },
	};
	double v;
	int n = parse_number(s, &v);

	if (n < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].unit) == 0) {
			double b = v * units[i].mult;

			if (b > (double)INT64_MAX / 2)
				return -ERANGE;
			*ret_bytes = (int64_t)llround(b);
			return 0;
		}
	}
	return -EINVAL;
}

int
config_parse_time_of_day(const char *s, int64_t *ret_s)
{
	size_t len = strlen(s);
	int v[3] = { 0, 0, 0 };

	/* HH:MM or HH:MM:SS, two digits each */
	if (len != 5 && len != 8)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 3) {
		if (s[i] < '0' || s[i] > '9' || s[i + 1] < '0' || s[i + 1] > '9' ||
		    (i + 2 < len && s[i + 2] != ':'))
			return -EINVAL;
		v[i / 3] = (s[i] - '0') * 10 + (s[i + 1] - '0');
	}
	if (v[0] > 23 || v[1] > 59 || v[2] > 59)
		return -EINVAL;
	*ret_s = v[0] * 3600 + v[1] * 60 + v[2];
	return 0;
}

/* Stores `value` into the field of `k`; on error returns a static reason. */
static const char *
set_value(struct config *cfg, const struct config_key *k, const char *value)
{
	char *field = (char *)cfg + k->offset;
	int64_t i64;
	double d;
	char *end;

	switch (k->type) {
	case KEY_URIS: {
		struct config_uris u;
		const char *why = config_parse_uris(value, &u);

		if (why)
			return why;
		config_uris_free(&u);
		return config_set_string((char **)field, value) < 0 ? "out of memory" : NULL;
	}
	case KEY_TOPIC:
		if (!normalize_valid_id(value, strlen(value)))
			return "must be 1-64 characters of A-Z a-z 0-9 _ -";
		/* fall through */
	case KEY_TIMEZONE:
		if (k->type == KEY_TIMEZONE) {
			struct tz *tz;

			if (tz_load(value, &tz) < 0)
				return "not a time zone under /usr/share/zoneinfo (e.g. Asia/Shanghai)";
			tz_free(tz);
		}
		/* fall through */
	case KEY_STRING:
		return config_set_string((char **)field, value) < 0 ? "out of memory" : NULL;
	case KEY_DURATION:
		if (config_parse_duration(value, &i64) < 0)
			return "not a duration (e.g. 100ms, 30s, 5m, 12h, 2d)";
		break;
	case KEY_SIZE:
		if (config_parse_size(value, &i64) < 0)
			return "not a size (e.g. 65536, 64KiB, 1GiB)";
		break;
	case KEY_INT:
		errno = 0;
		i64 = strtoll(value, &end, 10);
		if (end == value || *end || errno)
			return "not a whole number";
		break;
	case KEY_TEMP:
		errno = 0;
		d = strtod(value, &end);
		if (end == value || *end || errno || !isfinite(d))
			return "not a number";
		if (d < 30.0 || d > 45.0)
			return "out of range (30.0 to 45.0 degrees C)";
		*(double *)field = d;
		return NULL;
	case KEY_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
			*(bool *)field = value[0] == 'y';
			return NULL;
		}
		return "must be yes or no";
	case KEY_SYNC:
		for (int m = 0; m < 3; m++) {
			if (strcmp(value, sync_names[m]) == 0) {
				*(int *)field = m;
				return NULL;
			}
		}
		return "must be off, interval or always";
	case KEY_TIME_OF_DAY:
		if (config_parse_time_of_day(value, &i64) < 0)
			return "not a time of day HH:MM or HH:MM:SS (00:00 to 23:59:59, e.g. 20:00)";
		*(int64_t *)field = i64;
		return NULL;
	case KEY_LEVEL: {
		enum log_level level;

		if (log_parse_level(value, &level) < 0)
			return "must be error, warning, notice, info or debug";
		*(int *)field = (int)level;
		return NULL;
	}
	default: return "internal error: unknown key type";
	}
	if (i64 < k->min || i64 > k->max)
		return "out of range";
	*(int64_t *)field = i64;
	return NULL;
}

int
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (const struct config_key *k = config_keys; k->section; k++) {
		const char *why = set_value(cfg, k, k->default_value);

		if (why == NULL)
			continue;
		config_finish(cfg);
		if (strcmp(why, "out of memory") == 0)
			return -ENOMEM;
		/* Only the machine can refuse a default: the time zone's file
		 * missing (no tzdata). */
		fprintf(stderr, "[%s] %s: the default '%s' is refused here: %s\n", k->section,
			k->name, k->default_value, why);
		return -EINVAL;
	}
	return 0;
}

const char *
config_init_strerror(int rc)
{
	return rc == -ENOMEM ? "out of memory" : "a built-in default is refused (above)";
}

void
config_finish(struct config *cfg)
{
	if (!cfg)
		return;
	for (const struct config_key *k = config_keys; k->section; k++) {
		if (k->type == KEY_STRING || k->type == KEY_URIS || k->type == KEY_TOPIC ||
		    k->type == KEY_TIMEZONE) {
			char **p = (char **)((char *)cfg + k->offset);

			free(*p);
			*p = NULL;
		}
	}
}

struct parse_state {
	struct config *cfg;
	config_foreign_fn *foreign;
	void *foreign_arg;
	const char *path;
	FILE *errors;
	FILE *in;
	int line;
	int nerrors;
	char seen[sizeof(config_keys) / sizeof(config_keys[0])];
	/* An unknown section not yet reported: its keys report it, each as an
	 * unknown key; one with no keys is reported at the next section or the
	 * end (inih calls the handler only for keys). */
	char unknown_section[64];
	int unknown_line;
};

/* Whether any program reads `section` (its keys or a foreign daemon's). */
static bool
section_known(const char *section)
{
	if (config_section_foreign(section))
		return true;
	for (const struct config_key *k = config_keys; k->section; k++)
		if (strcmp(k->section, section) == 0)
			return true;
	return false;
}

/* Reports the pending unknown section, if any. */
static void
flush_unknown_section(struct parse_state *ps)
{
	if (!ps->unknown_section[0])
		return;
	fprintf(ps->errors, "%s:%d: unknown section [%s]\n", ps->path, ps->unknown_line,
		ps->unknown_section);
	ps->nerrors++;
	ps->unknown_section[0] = '\0';
}

/* A line `[name]` (inih's syntax: blanks before, the name up to the first
 * ']'): an unknown name becomes the pending section. */
static void
note_section(struct parse_state *ps, const char *line)
{
	const char *end;
	size_t len;

	if (ps->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3; /* a UTF-8 byte order mark, which inih skips too */
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line != '[' || !(end = strchr(line, ']')))
		return;
	flush_unknown_section(ps);
	len = (size_t)(end - line - 1);
	/* A name longer than the buffer is no program's: reported cut short. */
	snprintf(ps->unknown_section, sizeof(ps->unknown_section), "%.*s", (int)len, line + 1);
	if (len < sizeof(ps->unknown_section) && section_known(ps->unknown_section))
		ps->unknown_section[0] = '\0';
	else
		ps->unknown_line = ps->line;
}

static char *
read_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	size_t len;

	if (!fgets(str, num, ps->in))
		return NULL;
	ps->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(ps->in)) {
		int c;

		fprintf(ps->errors, "%s:%d: line too long (at most %d characters)\n", ps->path,
			ps->line, num - 2);
		ps->nerrors++;
		while ((c = fgetc(ps->in)) != EOF && c != '\n')
			;
		str[0] = '\n';
		str[1] = '\0';
	}
	note_section(ps, str);
	return str;
}

static int
handle_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	const struct config_key *k;
	const char *why;

	ps->unknown_section[0] = '\0'; /* the key's own error names the section */
	if (config_section_foreign(section)) {
		if (ps->foreign &&
		    ps->foreign(ps->foreign_arg, section, name, value ? value : "", ps->path,
				ps->line, ps->errors) < 0)
			ps->nerrors++;
		return 1;
	}
	k = find_key(section, name);
	if (!k) {
		fprintf(ps->errors, "%s:%d: unknown key '%s' in section [%s]\n", ps->path, ps->line,
			name, section);
		ps->nerrors++;
		return 1;
	}
	if (ps->seen[k - config_keys]) {
		fprintf(ps->errors, "%s:%d: [%s] %s is set twice\n", ps->path, ps->line, section,
			name);
		ps->nerrors++;
		return 1;
	}
	ps->seen[k - config_keys] = 1;
	why = set_value(ps->cfg, k, value ? value : "");
	if (why) {
		fprintf(ps->errors, "%s:%d: [%s] %s = '%s': %s\n", ps->path, ps->line, section,
			name, value ? value : "", why);
		ps->nerrors++;
	}
	return 1;
}

bool
config_section_foreign(const char *section)
{
	static const char *const whole[] = { "notify", "web" };
	static const char *const prefixes[] = { "receiver.", "route." };

	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (strcmp(section, whole[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(section, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

int
config_load(struct config *cfg, const char *path, FILE *errors)
{
	return config_load_with(cfg, path, errors, NULL, NULL);
}

int
config_load_with(struct config *cfg, const char *path, FILE *errors, config_foreign_fn *foreign,
		 void *arg)
{
	struct parse_state ps = {
		.cfg = cfg, .path = path, .errors = errors, .foreign = foreign, .foreign_arg = arg
	};
	int rc;

	ps.in = fopen(path, "r");
	if (!ps.in) {
		int err = errno;

		fprintf(errors, "%s: cannot open: %s\n", path, strerror(err));
		return -err;
	}
	rc = ini_parse_stream(read_line, &ps, handle_key, &ps);
	fclose(ps.in);
	flush_unknown_section(&ps);
	if (rc > 0) {
		fprintf(errors, "%s:%d: syntax error (expected [section] or key = value)\n", path,
			rc);
		ps.nerrors++;
	} else if (rc < 0) {
		fprintf(errors, "%s: cannot parse: out of memory\n", path);
		return -ENOMEM;
	}
	/* One scheme for the whole list: the first URI's is every URI's. */
	if ((cfg->mqtt_ca_file[0] || cfg->mqtt_cert_file[0] || cfg->mqtt_key_file[0]) &&
	    strncmp(cfg->mqtt_uri, "ssl://", 6) != 0) {
		fprintf(errors,
			"%s: [mqtt] ca_file, cert_file or key_file is set but uri '%s' is not"
			" ssl://: the connection would not be encrypted\n",
			path, cfg->mqtt_uri);
		ps.nerrors++;
	}
	if (ps.nerrors == 0 && cfg->critical_c < cfg->fever_c) {
		fprintf(errors, "%s: [rules] critical_c must not be below fever_c\n", path);
		ps.nerrors++;
	}
	return ps.nerrors ? -EINVAL : 0;
}

/* Formats a duration in the largest unit that divides it exactly. */
static void
format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {
		{ "d", 86400000 },
		{ "h", 3600000 },
		{ "m", 60000 },
		{ "s", 1000 },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%lldms", (long long)ms);
}

static void
format_size(int64_t b, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {
		{ "TiB", 1099511627776LL },
		{ "GiB", 1073741824 },
		{ "MiB", 1048576 },
		{ "KiB", 1024 },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (b != 0 && b % units[i].mult == 0) {
			snprintf(buf, len, "%lld%s", (long long)(b / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%lld", (long long)b);
}

void
config_format_value(const struct config *cfg, const struct config_key *k, char *buf, size_t len)
{
	const char *field = (const char *)cfg + k->offset;

	switch (k->type) {
	case KEY_STRING:
	case KEY_URIS:
	case KEY_TOPIC:
	case KEY_TIMEZONE: snprintf(buf, len, "%s", *(char *const *)field); break;
	case KEY_DURATION: format_duration(*(const int64_t *)field, buf, len); break;
	case KEY_SIZE: format_size(*(const int64_t *)field, buf, len); break;
	case KEY_INT: snprintf(buf, len, "%lld", (long long)*(const int64_t *)field); break;
	case KEY_TEMP: temp_format_c(*(const double *)field, buf, len); break;
	case KEY_SYNC: snprintf(buf, len, "%s", sync_names[*(const int *)field]); break;
	case KEY_BOOL: snprintf(buf, len, "%s", *(const bool *)field ? "yes" : "no"); break;
	case KEY_LEVEL: snprintf(buf, len, "%s", log_level_name(*(const int *)field)); break;
	case KEY_TIME_OF_DAY: {
		int64_t v = *(const int64_t *)field;

		if (v % 60)
			snprintf(buf, len, "%02d:%02d:%02d", (int)(v / 3600), (int)(v / 60 % 60),
				 (int)(v % 60));
		else
			snprintf(buf, len, "%02d:%02d", (int)(v / 3600), (int)(v / 60 % 60));
		break;
	}
	}
}

void
config_print(const struct config *cfg, FILE *out)
{
	const char *section = NULL;
	char buf[1024];

	for (const struct config_key *k = config_keys; k->section; k++) {
		if (!section || strcmp(section, k->section) != 0) {
			fprintf(out, "%s[%s]\n", section ? "\n" : "", k->section);
			section = k->section;
		}
		config_format_value(cfg, k, buf, sizeof(buf));
		fprintf(out, "%s = %s\n", k->name, buf);
	}
}

int
config_keep_restart_keys(struct config *cfg, const struct config *running, FILE *out)
{
	char now[1024], was[1024];
	int kept = 0;

	for (const struct config_key *k = config_keys; k->section; k++) {
		if (k->reloadable)
			continue;
		config_format_value(cfg, k, now, sizeof(now));
		config_format_value(running, k, was, sizeof(was));
		if (strcmp(now, was) == 0)
			continue;
		fprintf(out,
			"[%s] %s changed from '%s' to '%s': it takes effect at the next restart\n",
			k->section, k->name, was, now);
		if (set_value(cfg, k, was) == NULL)
			kept++;
	}
	return kept;
}

void
config_free_secret(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

char *
config_read_secret(const char *path)
{
	char buf[1025];
	size_t n;
	FILE *f = fopen(path, "re");
	char *s;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	n = strlen(buf);
	if (n == 0 || n >= sizeof(buf) - 1) {
		explicit_bzero(buf, sizeof(buf));
		errno = EINVAL;
		return NULL;
	}
	s = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return s;
}
