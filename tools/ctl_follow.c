/* ctl_follow.c - cordonctl alerts --follow: the open alerts from PostgreSQL,
 * then every transition cordond publishes on
 * <topic_root>/<site|+>/alert/<kind|#> (docs/alerts.md).
 *
 * On a terminal: a table of the open alerts, redrawn in place with plain
 * ANSI escapes (alternate screen) on every transition and every second;
 * resolved alerts drop off. Otherwise: the listing of `alerts`, then one
 * line per transition, flushed, for pipes and tests.
 *
 * One thread: Paho's synchronous client, read with MQTTClient_receive()
 * (which also keeps the connection alive); SIGINT and SIGTERM only set a
 * flag. The subscription is made before PostgreSQL is read, so nothing
 * published meanwhile is missed (it may show twice in line mode). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <jansson.h>

#include "config.h"
#include "ctl.h"
#include "topics.h"

#define MAX_ROWS 4096		/* open alerts kept for the table */
#define MAX_PAYLOAD (64 * 1024) /* larger messages are not alerts of cordond's */
#define RECONNECT_S 2

/* One open alert, as its latest transition (or PostgreSQL) describes it.
 * Strings are copied with control characters replaced (see copy()). */
struct row {
	char id[65], site[65], kind[65], severity[16], state[16], subject[136], text[512];
	/* "silenced #12 until 14:00; " when PostgreSQL said a silence held it
	 * (kept across its transitions until the table is read again), else "". */
	char silenced[80];
	long count;
	time_t raised, updated;
};

struct view {
	int tty;
	const char *filter;
	char status[160]; /* "" or what is wrong (shown in the table's title) */
	struct row *rows;
	size_t n, not_shown;
};

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

/* Copies at most size-1 bytes of src (NULL: "-"), replacing control
 * characters so a message cannot move the cursor, and not cutting a UTF-8
 * sequence in half. */
static void
copy(char *dst, size_t size, const char *src)
{
	size_t n = 0;

	if (!src)
		src = "-";
	for (; src[n] && n + 1 < size; n++) {
		unsigned char c = (unsigned char)src[n];

		dst[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (src[n]) /* truncated: drop a partial sequence */
		while (n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0x80)
			n--;
	if (src[n] && n > 0 && ((unsigned char)dst[n - 1] & 0xc0) == 0xc0)
		n--;
	dst[n] = '\0';
}

/* "2020-02-16T10:32:00.123Z" (what cordond sends, UTC) as time_t; now
 * when it does not parse. */
static time_t
parse_utc(const char *s)
{
	struct tm tm = { 0 };

	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) != 6)
		return time(NULL);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static const char *
str(json_t *msg, const char *key)
{
	return json_string_value(json_object_get(msg, key));
}

/* ---------------------------------------------------------------- the table */

static struct row *
find(struct view *v, const char *id)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->rows[i].id, id) == 0)
			return &v->rows[i];
	return NULL;
}

/* Applies a transition: inserts or updates the row, or drops it when resolved. */
static void
apply(struct view *v, const struct row *r)
{
	struct row *old = find(v, r->id);

	if (strcmp(r->state, "resolved") == 0) {
		if (old)
			*old = v->rows[--v->n];
	} else if (old) {
		char held[sizeof(old->silenced)];

		memcpy(held, old->silenced, sizeof(held));
		*old = *r;
		if (!old->silenced[0])
			memcpy(old->silenced, held, sizeof(held));
	} else if (v->n < MAX_ROWS) {
		v->rows[v->n++] = *r;
	} else {
		v->not_shown++;
	}
}

/* Replaces the rows with the open alerts in PostgreSQL. 0 or -1. */
static int
load(struct ctl *ctl, struct view *v, const char *kind, const char *site, int print)
{
	PGresult *res;

	if (PQstatus(ctl->conn) != CONNECTION_OK)
		PQreset(ctl->conn);
	res = ctl_open_alerts(ctl, kind, site);
	if (!res)
		return -1;
	if (print) {
		if (PQntuples(res) == 0)
			printf("no open alerts\n");
		else
			ctl_print_columns(res, CTL_ALERTS_LISTED);
	}
	v->n = v->not_shown = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		struct row r;

		copy(r.site, sizeof(r.site), PQgetvalue(res, i, 1));
		copy(r.kind, sizeof(r.kind), PQgetvalue(res, i, 2));
		copy(r.severity, sizeof(r.severity), PQgetvalue(res, i, 3));
		copy(r.state, sizeof(r.state), PQgetvalue(res, i, CTL_ALERT_STATE));
		copy(r.subject, sizeof(r.subject), PQgetvalue(res, i, 5));
		r.count = atol(PQgetvalue(res, i, 6));
		copy(r.id, sizeof(r.id), PQgetvalue(res, i, 7));
		r.raised = (time_t)atoll(PQgetvalue(res, i, CTL_ALERT_RAISED_EPOCH));
		r.updated = (time_t)atoll(PQgetvalue(res, i, CTL_ALERT_UPDATED_EPOCH));
		copy(r.text, sizeof(r.text), PQgetvalue(res, i, CTL_ALERT_DETAIL));
		r.silenced[0] = '\0';
		if (*PQgetvalue(res, i, CTL_ALERT_SILENCE_ID)) {
			char held[80];

			snprintf(held, sizeof(held), "silenced #%.20s until %.20s; ",
				 PQgetvalue(res, i, CTL_ALERT_SILENCE_ID),
				 PQgetvalue(res, i, CTL_ALERT_SILENCE_SHOWN));
			copy(r.silenced, sizeof(r.silenced), held);
		}
		apply(v, &r);
	}
	PQclear(res);
	return 0;
}

static int
severity_rank(const char *s)
{
	return strcmp(s, "critical") == 0 ? 0 : strcmp(s, "warning") == 0 ? 1 : 2;
}

/* As `alerts` lists them: critical first, then newest, then by id. */
static int
row_order(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int d = severity_rank(x->severity) - severity_rank(y->severity);

	if (d)
		return d;
	if (x->raised != y->raised)
		return x->raised > y->raised ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* "45s", "12m", "3h05m", "2d04h". */
static const char *
age(char *buf, size_t size, time_t since, time_t now)
{
	long s = since < now ? (long)(now - since) : 0;

	if (s < 60)
		snprintf(buf, size, "%lds", s);
	else if (s < 3600)
		snprintf(buf, size, "%ldm", s / 60);
	else if (s < 86400)
		snprintf(buf, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, size, "%ldd%02ldh", s / 86400, s / 3600 % 24);
	return buf;
}

/* Prints s in at most cols terminal columns (one per character: good for
 * ids and Latin text) and returns how many it used. */
static int
put_cols(const char *s, int cols)
{
	int used = 0;

	for (; *s && used < cols; used++) {
		int len = 1;

		while (((unsigned char)s[len] & 0xc0) == 0x80)
			len++;
		fwrite(s, 1, (size_t)len, stdout);
		s += len;
	}
	return used;
}

/* Prints one line of the table, cut at the terminal's width, and clears
 * the rest of it. */
static void line(int width, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
line(int width, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_cols(buf, width);
	fputs("\033[K\n", stdout);
}

static void
draw(struct view *v)
{
	struct winsize ws = { 0 };
	int width = 120, height = 40, kindw = 4, subjw = 7, shown;
	time_t now = time(NULL);
	char clock[16], a1[32], a2[32];

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_row > 4) {
		width = ws.ws_col - 1; /* never the last column: no wrap on any terminal */
		height = ws.ws_row;
	}
	qsort(v->rows, v->n, sizeof(v->rows[0]), row_order);
	for (size_t i = 0; i < v->n; i++) {
		int k = (int)strlen(v->rows[i].kind), s = (int)strlen(v->rows[i].subject);

		kindw = k > kindw ? k : kindw;
		subjw = s > subjw ? (s < 40 ? s : 40) : subjw;
	}
	strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&now));
	fputs("\033[H", stdout);
	line(width, "%s  %zu open alert%s on %s%s%s", clock, v->n + v->not_shown,
	     v->n + v->not_shown == 1 ? "" : "s", v->filter, v->status[0] ? "  -- " : "",
	     v->status);
	line(width, "%s", "");
	line(width, "%-32s  %-*s  %-8s  %-8s  %-*s  %5s  %6s  %7s  %s", "alert_id", kindw, "kind",
	     "severity", "state", subjw, "subject", "count", "age", "updated", "text");
	shown = height - 4; /* title, blank, header, and the "more" line */
	for (size_t i = 0; i < v->n; i++) {
		const struct row *r = &v->rows[i];

		if ((int)i >= shown) {
			line(width, "... and %zu more", v->n - i + v->not_shown);
			break;
		}
		line(width, "%-32s  %-*s  %-8s  %-8s  %-*.*s  %5ld  %6s  %7s  %s%s", r->id, kindw,
		     r->kind, r->severity, r->state, subjw, subjw, r->subject, r->count,
		     age(a1, sizeof(a1), r->raised, now), age(a2, sizeof(a2), r->updated, now),
		     r->silenced, r->text);
	}
	if (v->n == 0)
		line(width, "(none)");
	fputs("\033[J", stdout);
	fflush(stdout);
}

/* ---------------------------------------------------------------- messages */

/* Handles one message: a line in line mode, a change of the table on a
 * terminal. Returns 1 when the table changed. */
static int
handle(struct view *v, const char *topic, const void *payload, int len)
{
	static int warned;
	json_t *msg;
	struct row r;
	const char *id, *transition;
	int changed = 0;

	if (len <= 0 || len > MAX_PAYLOAD ||
	    !(msg = json_loadb(payload, (size_t)len, JSON_REJECT_DUPLICATES, NULL)))
		msg = NULL;
	id = msg ? str(msg, "alert_id") : NULL;
	if (!id || !*id) {
		if (!warned++ && !v->tty)
			tool_err(
				"ignoring a message on %.200s that is not an alert (only the first "
				"is reported)",
				topic);
		json_decref(msg);
		return 0;
	}
	copy(r.id, sizeof(r.id), id);
	copy(r.site, sizeof(r.site), str(msg, "site"));
	copy(r.kind, sizeof(r.kind), str(msg, "kind"));
	copy(r.severity, sizeof(r.severity), str(msg, "severity"));
	copy(r.state, sizeof(r.state), str(msg, "state"));
	copy(r.subject, sizeof(r.subject), str(msg, "subject"));
	copy(r.text, sizeof(r.text), str(msg, "text"));
	r.silenced[0] = '\0';
	r.count = (long)json_integer_value(json_object_get(msg, "count"));
	r.raised = parse_utc(str(msg, "raised_at"));
	r.updated = parse_utc(str(msg, "updated_at"));
	if (v->tty) {
		apply(v, &r);
		changed = 1;
	} else {
		char at[40];

		/* The transition (raised, updated, acked, resolved) is what happened;
		 * older cordonds sent only the state. */
		transition = str(msg, "transition");
		copy(at, sizeof(at), str(msg, "updated_at"));
		printf("%s  %s  %-20s  %-8s  %-8s  %s  %s\n", at, r.id, r.kind, r.severity,
		       transition && *transition ? transition : r.state, r.subject, r.text);
		fflush(stdout);
	}
	json_decref(msg);
	return changed;
}

/* Connects and subscribes. 0 or -1 after printing why. */
static int
subscribe(const struct config *cfg, struct view *v, MQTTClient *ret_client)
{
	char client_id[64];
	MQTTClient client;
	int rc;

	snprintf(client_id, sizeof(client_id), "cordonctl-follow-%ld", (long)getpid());
	if (ctl_mqtt_connect(cfg, client_id, &client) < 0)
		return -1;
	rc = MQTTClient_subscribe(client, v->filter, 1);
	if (rc != MQTTCLIENT_SUCCESS) {
		tool_err("MQTT: the broker refused the subscription to %s: %s (%d)", v->filter,
			 rc < 0 ? MQTTClient_strerror(rc) : "not authorized?", rc);
		MQTTClient_disconnect(client, 1000);
		MQTTClient_destroy(&client);
		return -1;
	}
	*ret_client = client;
	return 0;
}

/* Waits RECONNECT_S seconds, or less when a signal comes. */
static void
pause_retry(void)
{
	struct timespec ts = { RECONNECT_S, 0 };

	nanosleep(&ts, NULL);
}

int
ctl_follow_alerts(struct ctl *ctl, const char *kind, const char *site)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	struct view v = { .tty = isatty(STDOUT_FILENO) };
	struct config cfg;
	MQTTClient client = NULL;
	char *filter = NULL;
	time_t drawn = 0;
	int rc = CTL_FAIL;

	if (ctl_load_config(ctl, &cfg) < 0)
		return CTL_FAIL;
	filter = malloc(TOPIC_MAX_BYTES);
	if (filter &&
	    topics_build(filter, TOPIC_MAX_BYTES, cfg.topic_root, TOPIC_ALERT, site,
			 kind ? kind : "#") < 0) {
		tool_err("--site or --kind too long");
		goto out;
	}
	if (!filter || !(v.rows = calloc(MAX_ROWS, sizeof(v.rows[0])))) {
		tool_err("out of memory");
		goto out;
	}
	v.filter = filter;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (subscribe(&cfg, &v, &client) < 0 || load(ctl, &v, kind, site, !v.tty) < 0)
		goto out;
	if (v.tty)
		fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, no cursor */
	else
		fprintf(stderr, "following %s at %s (SIGINT or SIGTERM ends)\n", filter,
			cfg.mqtt_uri);
	fflush(stdout);

	while (!stop_signal) {
		char *topic = NULL;
		int topic_len = 0, r;
		MQTTClient_message *m = NULL;

		if (v.tty && time(NULL) != drawn) {
			draw(&v);
			drawn = time(NULL);
		}
		r = MQTTClient_receive(client, &topic, &topic_len, &m, 500);
		if ((r == MQTTCLIENT_SUCCESS || r == MQTTCLIENT_TOPICNAME_TRUNCATED) && m) {
			if (handle(&v, topic, m->payload, m->payloadlen))
				drawn = 0;
			MQTTClient_freeMessage(&m);
			MQTTClient_free(topic);
			continue;
		}
		if (r == MQTTCLIENT_SUCCESS && MQTTClient_isConnected(client))
			continue; /* timeout */

		/* Lost: reconnect until it works; what was published meanwhile is
		 * not shown (the table is read again from PostgreSQL). */
		MQTTClient_destroy(&client);
		client = NULL;
		snprintf(v.status, sizeof(v.status), "connection to the broker lost, reconnecting");
		if (!v.tty)
			tool_err("connection to the broker lost; reconnecting every %d s",
				 RECONNECT_S);
		for (;;) {
			if (v.tty)
				draw(&v); /* the last attempt's error shows below the table */
			if (stop_signal || subscribe(&cfg, &v, &client) == 0)
				break;
			pause_retry();
		}
		if (stop_signal)
			break;
		v.status[0] = '\0';
		if (v.tty)
			load(ctl, &v, kind, site, 0);
		else
			tool_err("reconnected to %s; transitions meanwhile are not shown",
				 cfg.mqtt_uri);
		drawn = 0;
	}
	rc = CTL_OK;
out:
	if (v.tty && rc == CTL_OK)
		fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (client) {
		MQTTClient_disconnect(client, 1000);
		MQTTClient_destroy(&client);
	}
	free(v.rows);
	free(filter);
	config_finish(&cfg);
	return rc;
}
