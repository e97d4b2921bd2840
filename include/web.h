/* web.h - cordon-web, the operator console's server (issue 18,
 * docs/web.md). Its parts, one job each:
 *   web_config.c  the [web] section of the shared config file
 *   web_db.c      a small pool of PostgreSQL connections
 *   web_auth.c    passwords, sessions, CSRF tokens, lock-outs
 *   web_live.c    its own MQTT subscription: the retained alert state,
 *                 the transitions fanned out to the SSE clients, and the
 *                 ack / need publishes waiting for their PUBACK
 *   web_http.c    libmicrohttpd: requests, bodies, answers, static files
 *   web_api.c     the /api/ routes and their handlers
 *   web_views.c   the boards and the report (include/views.h)
 *   web_main.c    argv, signals, sd_notify, the loop
 * Nothing here talks to cordond: a slow console never slows it. */
#ifndef CORDON_WEB_H
#define CORDON_WEB_H

#include <jansson.h>
#include <stdatomic.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

#define WEB_BODY_MAX 16384	/* bytes of a request body */
#define WEB_NOTE_MAX 255	/* bytes of an ack's note */
#define WEB_NAME_MAX 64		/* bytes of an operator's name */
#define WEB_SSE_QUEUE 256	/* events waiting for one SSE client */
#define WEB_RETAINED_MAX 100000 /* alerts kept from the broker's retained state */

/* ---- web_config.c ---- */

/* cordon-web's configuration: the shared sections (base) and [web].
 * Durations in milliseconds. */
struct web_config {
	struct config base;
	char *listen;	     /* "HOST:PORT" */
	char *assets_dir;    /* the page's files */
	char *client_id;     /* "" until loaded: cordon-web-<hostname>-<pid> */
	char *username;	     /* [web] username, "": [mqtt]'s (web_config_username) */
	char *password_file; /* [web] password_file, with username */
	int64_t session_ttl;
	int64_t idle_timeout;
	int64_t lockout_after; /* failures in a row */
	int64_t lockout_time;
	bool secure_cookies;
	int64_t max_connections;
	int64_t db_pool;
	int64_t request_timeout;
};

/* Defaults; 0, or config_init's -ENOMEM or -EINVAL (config.h). */
int web_config_init(struct web_config *wc) __attribute__((warn_unused_result));
void web_config_finish(struct web_config *wc);
/* Reads `path` (the shared file); errors go to `errors` as config_load()'s.
 * 0, -EINVAL (errors printed) or another -errno. */
int web_config_load(struct web_config *wc, const char *path, FILE *errors)
	__attribute__((warn_unused_result));
/* The broker user cordon-web connects as, and the file of its password:
 * [web] username and password_file when username is set, else [mqtt]'s
 * pair (a user is never sent another user's password). "" when none. */
const char *web_config_username(const struct web_config *wc);
const char *web_config_password_file(const struct web_config *wc);
/* The effective [web] in INI form. */
void web_config_print(const struct web_config *wc, FILE *out);
/* The [web] keys' names, NULL-terminated (for the docs test). */
extern const char *const web_config_keys[];

/* ---- web_db.c ---- */

struct web_db;

/* A pool of `size` connections to `conninfo`, made as they are needed. */
int web_db_create(const char *conninfo, int size, struct web_db **ret)
	__attribute__((warn_unused_result));
void web_db_destroy(struct web_db *db);
/* A connection to a migrated database, waiting up to `wait_ms` for one to
 * be free. -EAGAIN: none free in time; -EIO: PostgreSQL is away (the
 * reason is logged, rate-limited). Give it back with web_db_release(). */
int web_db_acquire(struct web_db *db, int wait_ms, PGconn **ret)
	__attribute__((warn_unused_result));
/* Gives `conn` back; a broken one is closed and made again next time. */
void web_db_release(struct web_db *db, PGconn *conn);
/* Whether the last attempt to reach PostgreSQL worked. */
bool web_db_is_up(struct web_db *db);

/* Runs `sql` with text parameters (NULL = SQL NULL); the result when it
 * returned rows or a command status, else NULL with PostgreSQL's message
 * logged as `what`. PQclear it. */
PGresult *web_db_query(PGconn *conn, const char *what, const char *sql, int nparams,
		       const char *const *params);
#define WEB_QUERY(conn, what, sql, ...)                                                     \
	web_db_query((conn), (what), (sql),                                                 \
		     (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
		     (const char *const[]){ __VA_ARGS__ })

/* ---- web_auth.c ---- */

enum web_role { WEB_VIEWER, WEB_OPERATOR, WEB_ADMIN };

/* A logged-in operator, as the session gives it. */
struct web_session {
	char name[WEB_NAME_MAX + 1];
	enum web_role role;
	json_t *sites; /* array of strings; empty: every site (owned) */
	char csrf[65];
};

/* libsodium's start and the dummy hash that unknown names are checked
 * against (so both cost the same). `concurrency` verifications may run at
 * once; the rest wait. 0 or -errno. */
int web_auth_init(int concurrency) __attribute__((warn_unused_result));
void web_auth_finish(void);
/* Argon2id (crypto_pwhash_str, interactive limits) of `password` into
 * ret (WEB_PWHASH_LEN bytes). 0 or -ENOMEM. */
#define WEB_PWHASH_LEN 128
int web_auth_hash(const char *password, char *ret) __attribute__((warn_unused_result));
/* Whether `password` matches `hash` (NULL: the dummy; always false). */
bool web_auth_verify(const char *hash, const char *password);
/* "viewer" / "operator" / "admin" <-> enum; parse: 0 or -EINVAL. */
const char *web_role_name(enum web_role r);
int web_role_parse(const char *s, enum web_role *ret) __attribute__((warn_unused_result));
/* Whether `name` is an operator's name as sql/0011 allows it. */
bool web_name_is_valid(const char *name);

enum web_login_result { WEB_LOGIN_OK, WEB_LOGIN_BAD, WEB_LOGIN_LOCKED };
/* The login: lock-out check, password check, lock-out bookkeeping, and on
 * success a new session: ret_cookie (65 bytes: the token, hex) and
 * ret_sess (web_session_clear() it). ret_retry_s: seconds left of a
 * lock-out. Takes connections from `db` itself, and none while the
 * password is checked. -EIO when PostgreSQL failed, -EAGAIN as
 * web_db_acquire. */
int web_login(struct web_db *db, const struct web_config *wc, const char *name,
	      const char *password, const char *addr, enum web_login_result *ret_result,
	      char *ret_cookie, struct web_session *ret_sess, long *ret_retry_s)
	__attribute__((warn_unused_result));
/* The session of cookie value `token` (touches seen_at): 0, -ENOENT (none
 * or expired), -EIO. */
int web_session_get(PGconn *conn, const struct web_config *wc, const char *token,
		    struct web_session *ret_sess) __attribute__((warn_unused_result));
/* The key of the session of cookie value `token` in web_sessions (the
 * SHA-256 as bytea input text: "\\x" and 64 hex digits), into ret
 * (WEB_SESSION_KEY_LEN bytes); "" when `token` is not one of ours. */
#define WEB_SESSION_KEY_LEN 67
void web_session_key(const char *token, char *ret);
/* Renews the session of `key` (web_session_key) as a request would: an
 * open live stream is use. 0, -ENOENT (it ended: logout, its operator
 * removed or replaced, session_ttl), -EIO. */
int web_session_renew(PGconn *conn, const char *key) __attribute__((warn_unused_result));
/* Ends the session of `token`: 0 or -EIO. */
int web_session_end(PGconn *conn, const char *token) __attribute__((warn_unused_result));
/* Deletes expired sessions and lock-outs long over: 0 or -EIO. */
int web_sessions_purge(PGconn *conn, const struct web_config *wc)
	__attribute__((warn_unused_result));
void web_session_clear(struct web_session *s);
/* Whether the session may see `site`. */
bool web_session_has_site(const struct web_session *s, const char *site);
/* The sites as JSON text for SQL ("[\"s1\"]"), or NULL for every site;
 * free() it. */
char *web_session_sites_param(const struct web_session *s);

/* ---- web_live.c ---- */

struct web_live;
struct web_sse;

/* Starts the MQTT client (cfg's [mqtt], wc->client_id) and the fan-out
 * thread; `db` enriches the transitions (silenced). 0 or -errno. */
int web_live_start(const struct web_config *wc, struct web_db *db, struct web_live **ret)
	__attribute__((warn_unused_result));
void web_live_stop(struct web_live *live);
bool web_live_is_connected(struct web_live *live);
/* The main loop, at least once a second (monotonic `now_ms`): connects
 * again after a lost connection or a failed connect, from the first URI
 * of [mqtt] uri (mqtt_broker.h, struct mqtt_redial). */
void web_live_tick(struct web_live *live, int64_t now_ms);
/* The open alerts of the retained state (a new array, sorted critical
 * first, then newest), limited to `sess`'s sites; NULL when the broker
 * holds none (then the caller asks the database). */
json_t *web_live_open_alerts(struct web_live *live, const struct web_session *sess);
/* Sorts an array of alerts in place as web_live_open_alerts() does:
 * critical first, then newest, then by alert_id. */
void web_live_sort_alerts(json_t *alerts);
/* One alert of the retained state by id (a new reference) or NULL. */
json_t *web_live_alert(struct web_live *live, const char *alert_id);
/* Publishes `payload` on `topic` at QoS 1 and waits up to `wait_ms` for
 * the PUBACK: 0, -ENOTCONN (not connected), -ETIMEDOUT, -EIO. */
int web_live_publish(struct web_live *live, const char *topic, const char *payload, int wait_ms)
	__attribute__((warn_unused_result));

/* An SSE client: registered with its sites (NULL: every one), its
 * session's key (web_session_key) and its first bytes (the snapshot). */
struct web_sse *web_sse_open(struct web_live *live, json_t *sites, const char *session_key,
			     char *first);
/* Copies the next bytes for the client into buf (at most max), waiting
 * up to 15 s and then giving a keepalive comment; every 15 s it renews
 * the client's session (web_session_renew). Returns the count, or -1 when
 * the client is to be closed (slow, its session ended, or the server
 * stops). */
ssize_t web_sse_read(struct web_sse *c, char *buf, size_t max);
void web_sse_close(struct web_sse *c);
/* Wakes every SSE client to close it (its page reconnects). */
void web_live_close_clients(struct web_live *live);
/* The same, and every client opened from now on is closed at once (at
 * stop, before the HTTP server stops). */
void web_live_refuse_clients(struct web_live *live);
unsigned web_live_clients(struct web_live *live);

/* Adds "silenced" ({"id","until"} or null), "texts" and "timezone" (the
 * site's zone, else default_tz) to each alert of `alerts` (an array).
 * conn NULL: silenced null, timezone default_tz. 0 or -EIO. */
int web_alerts_enrich(PGconn *conn, json_t *alerts, const char *default_tz)
	__attribute__((warn_unused_result));

/* ---- web_http.c / web_api.c ---- */

struct web;
struct web_req;

/* The whole server, owned by main. */
struct web {
	struct web_config cfg;
	struct web_db *db;
	struct web_live *live;
	struct MHD_Daemon *httpd;
};

/* Starts listening on [web] listen. 0 or -errno (logged). */
int web_http_start(struct web *w) __attribute__((warn_unused_result));
void web_http_stop(struct web *w);

/* What a handler gets: the request and the checked session. */
struct web_req {
	struct web *w;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	char *body;
	size_t body_len;
	const char *seg[6]; /* the path's segments after /api/, pointing into segbuf */
	int nseg;
	char segbuf[512];
	struct web_session sess;
	char addr[64];
};

/* A route: method, path pattern ('*' is one segment), who may, handler. */
#define WEB_ROUTE_PUBLIC 1u   /* no session needed */
#define WEB_ROUTE_CHANGE 2u   /* a change: CSRF, JSON, Origin */
#define WEB_ROUTE_OPERATOR 4u /* not for viewers */
#define WEB_ROUTE_STREAM 8u   /* answers with its own response */
struct web_route {
	const char *method;
	const char *path;
	unsigned flags;
	int (*handler)(struct web_req *r);
};
extern const struct web_route web_routes[];

/* Answers (each queues the response; MHD_YES / MHD_NO). The JSON is
 * consumed. */
int web_reply_json(struct web_req *r, unsigned status, json_t *doc);
/* The same with extra headers: name, value, ..., NULL. */
int web_reply_json_with(struct web_req *r, unsigned status, json_t *doc,
			const char *const *headers);
/* An answer without a body (204), with extra headers as above. */
int web_reply_empty(struct web_req *r, unsigned status, const char *const *headers);
/* The SSE answer reading from `c` (closed with the connection). */
int web_reply_stream(struct web_req *r, struct web_sse *c);
int web_reply_error(struct web_req *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int web_reply_db_error(struct web_req *r, int err);
int web_reply_raw(struct web_req *r, unsigned status, const char *type, const char *body,
		  size_t len, const char *disposition);
/* The request's query parameter `name`, NULL when absent. */
const char *web_arg(struct web_req *r, const char *name);
/* Checks an id (a site, kind, need: [A-Za-z0-9_-]{1,64}); when bad,
 * answers 400 and returns false. NULL passes. */
bool web_check_id(struct web_req *r, const char *what, const char *s);
/* Checks a date YYYY-MM-DD the same way. */
bool web_check_date(struct web_req *r, const char *what, const char *s);
/* The session's site filter for a query: answers 403 and returns false
 * when `site` is given and not the operator's. */
bool web_check_site(struct web_req *r, const char *site);

/* web_views.c's handlers. */
int web_api_gates(struct web_req *r);
int web_api_zones(struct web_req *r);
int web_api_isolation(struct web_req *r);
int web_api_needs(struct web_req *r);
int web_api_household(struct web_req *r);
int web_api_report(struct web_req *r);
int web_api_report_csv(struct web_req *r);

/* How long a handler waits for a pooled connection and for a PUBACK. */
#define WEB_DB_WAIT_MS 3000
#define WEB_PUBACK_WAIT_MS 5000

#endif
