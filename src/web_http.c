/* web_http.c - cordon-web's HTTP side on libmicrohttpd: one thread per
 * connection ([web] max_connections of them), bodies capped at 16 KiB, a
 * request timeout; the checks every /api/ request passes before its
 * handler (session, CSRF token, Origin, JSON, role), the security headers
 * of every answer, /healthz, and the page's static files from [web]
 * assets_dir (no path leaves it). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "log.h"
#include "web.h"

#define CSP                                                                              \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;" \
	" connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"   \
	" frame-ancestors 'none'"

/* What a connection keeps between the calls of the access handler. */
struct reqstate {
	char *body;
	size_t len;
	bool too_large;
};

static void
add_headers(struct MHD_Response *resp, bool api)
{
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	if (api)
		MHD_add_response_header(resp, "Cache-Control", "no-store");
}

static int
queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *resp, bool api)
{
	int rc;

	if (!resp)
		return MHD_NO;
	add_headers(resp, api);
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

int
web_reply_raw(struct web_req *r, unsigned status, const char *type, const char *body, size_t len,
	      const char *disposition)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	if (type)
		MHD_add_response_header(resp, "Content-Type", type);
	if (disposition)
		MHD_add_response_header(resp, "Content-Disposition", disposition);
	return queue(r->conn, status, resp, true);
}

int
web_reply_json_with(struct web_req *r, unsigned status, json_t *doc, const char *const *headers)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;

	json_decref(doc);
	if (!text)
		return web_reply_error(r, 500, "internal", "out of memory");
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
	for (; headers && headers[0]; headers += 2)
		MHD_add_response_header(resp, headers[0], headers[1]);
	return queue(r->conn, status, resp, true);
}

int
web_reply_json(struct web_req *r, unsigned status, json_t *doc)
{
	return web_reply_json_with(r, status, doc, NULL);
}

int
web_reply_empty(struct web_req *r, unsigned status, const char *const *headers)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	for (; headers && headers[0]; headers += 2)
		MHD_add_response_header(resp, headers[0], headers[1]);
	return queue(r->conn, status, resp, true);
}

static ssize_t
sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	ssize_t n = web_sse_read(cls, buf, max);

	(void)pos;
	return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void
sse_free(void *cls)
{
	web_sse_close(cls);
}

int
web_reply_stream(struct web_req *r, struct web_sse *c)
{
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader, c, sse_free);

	if (!resp) {
		web_sse_close(c);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	MHD_add_response_header(resp, "Connection", "close");
	return queue(r->conn, 200, resp, true);
}

int
web_reply_error(struct web_req *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	json_t *doc;
	char *text;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	doc = json_pack("{s:s, s:s}", "error", code, "message", msg);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return MHD_NO;
	{
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);

		if (!resp) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
		if (status == 503)
			MHD_add_response_header(resp, "Retry-After", "5");
		rc = queue(r->conn, status, resp, true);
	}
	return rc;
}

int
web_reply_db_error(struct web_req *r, int err)
{
	if (err == -ENOENT)
		return web_reply_error(r, 404, "not_found", "no such thing");
	if (err == -EINVAL)
		return web_reply_error(r, 400, "bad_request", "a parameter is not what it takes");
	return web_reply_error(r, 503, "unavailable", "PostgreSQL is not reachable; try again");
}

const char *
web_arg(struct web_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool
web_check_id(struct web_req *r, const char *what, const char *s)
{
	size_t n;

	if (!s)
		return true;
	n = strlen(s);
	if (n == 0 || n > 64)
		goto bad;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			goto bad;
	return true;
bad:
	web_reply_error(r, 400, "bad_request", "%s must be 1 to 64 letters, digits, '_' or '-'",
			what);
	return false;
}

bool
web_check_date(struct web_req *r, const char *what, const char *s)
{
	int y, m, d;
	char tail;

	if (!s)
		return true;
	if (strlen(s) == 10 && s[4] == '-' && s[7] == '-' && isdigit((unsigned char)s[0]) &&
	    sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 && y >= 2000 && y <= 2200 &&
	    m >= 1 && m <= 12 && d >= 1 && d <= 31) {
		static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

		if (d <= mdays[m - 1] && !(m == 2 && d == 29 && !leap))
			return true;
	}
	web_reply_error(r, 400, "bad_request", "%s must be a date YYYY-MM-DD", what);
	return false;
}

bool
web_check_site(struct web_req *r, const char *site)
{
	if (!site || web_session_has_site(&r->sess, site))
		return true;
	web_reply_error(r, 403, "forbidden", "site %s is not yours", site);
	return false;
}

/* ---- static files ---- */

static const struct {
	const char *ext, *type;
} mime_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".mjs", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".json", "application/json; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".woff2", "font/woff2" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".webmanifest", "application/manifest+json" },
};

static const char *
mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
		if (strcasecmp(dot, mime_types[i].ext) == 0)
			return mime_types[i].type;
	return "application/octet-stream";
}

/* Whether `url` (already %-decoded) names a file under the assets: no
 * "." or ".." segment, no backslash, no control character, no hidden file. */
static bool
is_safe_path(const char *url)
{
	if (url[0] != '/' || strlen(url) > 256)
		return false;
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == '\\' || *p == 0x7f)
			return false;
		if (p[0] == '/' && p[1] == '.')
			return false;
	}
	return true;
}

static int
serve_file(struct web_req *r)
{
	const char *url = r->url;
	char path[PATH_MAX], real[PATH_MAX], root[PATH_MAX];
	struct stat st;
	struct MHD_Response *resp;
	int fd;

	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return web_reply_error(r, 405, "bad_request", "only GET here");
	if (!is_safe_path(url))
		return web_reply_error(r, 404, "not_found", "no such page");
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	if ((size_t)snprintf(path, sizeof(path), "%s%s", r->w->cfg.assets_dir, url) >=
		    sizeof(path) ||
	    !realpath(r->w->cfg.assets_dir, root) || !realpath(path, real) ||
	    strncmp(real, root, strlen(root)) != 0 || real[strlen(root)] != '/')
		return web_reply_error(r, 404, "not_found", "no such page");
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return web_reply_error(r, 404, "not_found", "no such page");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return web_reply_error(r, 404, "not_found", "no such page");
	}
	resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", mime_type(real));
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	return queue(r->conn, 200, resp, false);
}

/* ---- /api/ ---- */

/* Splits r->url after "/api/" into r->seg; false when it has too many
 * segments or an empty one. */
static bool
split_path(struct web_req *r)
{
	const char *p = r->url + 5;
	char *s;

	if (strlen(p) >= sizeof(r->segbuf))
		return false;
	strcpy(r->segbuf, p);
	r->nseg = 0;
	for (s = r->segbuf;;) {
		char *slash = strchr(s, '/');

		if (r->nseg == (int)(sizeof(r->seg) / sizeof(r->seg[0])) || !*s)
			return false;
		r->seg[r->nseg++] = s;
		if (!slash)
			break;
		*slash = '\0';
		s = slash + 1;
	}
	return true;
}

static bool
route_matches(const struct web_route *rt, const struct web_req *r)
{
	const char *p = rt->path + 5;
	int i = 0;

	for (;;) {
		size_t len = strcspn(p, "/");

		if (i == r->nseg)
			return false;
		if (!(len == 1 && *p == '*') &&
		    (strlen(r->seg[i]) != len || strncmp(p, r->seg[i], len) != 0))
			return false;
		i++;
		p += len;
		if (!*p)
			return i == r->nseg;
		p++;
	}
}

/* The Origin, when sent, must be this server as the browser reached it:
 * scheme://Host. */
static bool
origin_ok(struct web_req *r)
{
	const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
	const char *rest;

	if (!origin)
		return true;
	if (!host)
		return false;
	if (strncmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	else if (strncmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else
		return false;
	return strcasecmp(rest, host) == 0;
}

static bool
is_json_type(struct web_req *r)
{
	const char *t = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
	size_t n = strlen("application/json");

	return t && strncasecmp(t, "application/json", n) == 0 &&
		(t[n] == '\0' || t[n] == ';' || t[n] == ' ');
}

static int
api(struct web_req *r)
{
	const struct web_route *rt = NULL;
	bool path_known = false;
	const char *cookie, *token;
	PGconn *conn;
	int err;

	if (!split_path(r))
		return web_reply_error(r, 404, "not_found", "no such API");
	for (const struct web_route *x = web_routes; x->method; x++)
		if (route_matches(x, r)) {
			path_known = true;
			if (strcmp(x->method, r->method) == 0) {
				rt = x;
				break;
			}
		}
	if (!rt)
		return path_known ?
			web_reply_error(r, 405, "bad_request", "not with %s", r->method) :
			web_reply_error(r, 404, "not_found", "no such API");
	if (rt->flags & WEB_ROUTE_CHANGE) {
		if (!origin_ok(r))
			return web_reply_error(r, 403, "csrf",
					       "the request comes from another origin");
	}
	if (!(rt->flags & WEB_ROUTE_PUBLIC)) {
		cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "cordon_session");
		if (!cookie)
			return web_reply_error(r, 401, "login_required", "log in first");
		err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
		if (err < 0)
			return web_reply_db_error(r, err);
		err = web_session_get(conn, &r->w->cfg, cookie, &r->sess);
		web_db_release(r->w->db, conn);
		if (err == -ENOENT)
			return web_reply_error(r, 401, "login_required",
					       "no session, or it expired: log in");
		if (err < 0)
			return web_reply_db_error(r, err);
		if (rt->flags & WEB_ROUTE_CHANGE) {
			token = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							    "X-CSRF-Token");
			if (!token || strlen(token) != strlen(r->sess.csrf) ||
			    sodium_memcmp(token, r->sess.csrf, strlen(token)) != 0)
				return web_reply_error(r, 403, "csrf",
						       "X-CSRF-Token is missing or wrong");
		}
	}
	if ((rt->flags & WEB_ROUTE_CHANGE) && !is_json_type(r))
		return web_reply_error(r, 415, "json_required",
				       "the body must be application/json");
	if ((rt->flags & WEB_ROUTE_OPERATOR) && r->sess.role == WEB_VIEWER)
		return web_reply_error(r, 403, "forbidden", "a viewer may not do this");
	return rt->handler(r);
}

static int
healthz(struct web_req *r)
{
	bool db = web_db_is_up(r->w->db), mq = web_live_is_connected(r->w->live);
	json_t *doc = json_pack("{s:s, s:b, s:b, s:I}", "status", db && mq ? "ok" : "degraded",
				"postgres", db, "broker", mq, "sse_clients",
				(json_int_t)web_live_clients(r->w->live));

	return web_reply_json(r, db && mq ? 200 : 503, doc);
}

static void
client_addr(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
			  (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  buf, (socklen_t)len);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct web *w = cls;
	struct reqstate *st = *con_cls;
	struct web_req r;
	int rc;

	(void)version;
	if (!st) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		st = calloc(1, sizeof(*st));
		if (!st)
			return MHD_NO;
		*con_cls = st;
		if (cl && strtoull(cl, NULL, 10) > WEB_BODY_MAX)
			st->too_large = true;
		if (!st->too_large)
			return MHD_YES;
	}
	if (*upload_data_size) {
		if (!st->too_large && st->len + *upload_data_size <= WEB_BODY_MAX) {
			char *b = realloc(st->body, st->len + *upload_data_size + 1);

			if (!b)
				return MHD_NO;
			memcpy(b + st->len, upload_data, *upload_data_size);
			st->body = b;
			st->len += *upload_data_size;
			st->body[st->len] = '\0';
		} else {
			st->too_large = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	memset(&r, 0, sizeof(r));
	r.w = w;
	r.conn = conn;
	r.method = method;
	r.url = url;
	r.body = st->body;
	r.body_len = st->len;
	client_addr(conn, r.addr, sizeof(r.addr));
	if (st->too_large)
		rc = web_reply_error(&r, 413, "too_large", "the body is over %d bytes",
				     WEB_BODY_MAX);
	else if (strcmp(url, "/healthz") == 0)
		rc = healthz(&r);
	else if (strncmp(url, "/api/", 5) == 0)
		rc = api(&r);
	else if (strcmp(url, "/api") == 0)
		rc = web_reply_error(&r, 404, "not_found", "no such API");
	else
		rc = serve_file(&r);
	web_session_clear(&r.sess);
	return rc == MHD_YES ? MHD_YES : MHD_NO;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct reqstate *st = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (st) {
		free(st->body);
		free(st);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's messages end in a newline and may quote the request's
 * (decoded) URL: one line each, with no control character a client could
 * use to forge a line of its own. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	log_info("%s", msg);
}

/* [web] listen -> an address and libmicrohttpd's flag for its family;
 * 0 or -EINVAL. */
static int
listen_addr(const char *listen, struct sockaddr_storage *ret, unsigned *ret_flags)
{
	int family = config_parse_listen(listen, ret);

	if (family < 0)
		return family;
	*ret_flags = family == AF_INET6 ? MHD_USE_IPv6 : 0;
	return 0;
}

int
web_http_start(struct web *w)
{
	struct sockaddr_storage sa;
	unsigned flags;

	if (listen_addr(w->cfg.listen, &sa, &flags) < 0) {
		log_err("[web] listen %s: not an address", w->cfg.listen);
		return -EINVAL;
	}
	w->httpd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_ERROR_LOG | flags,
		0, NULL, NULL, on_request, w, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)w->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)(w->cfg.request_timeout / 1000), MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
		MHD_OPTION_END);
	if (!w->httpd) {
		log_err("cannot listen on [web] listen %s: %s", w->cfg.listen, strerror(errno));
		return -EADDRINUSE;
	}
	return 0;
}

void
web_http_stop(struct web *w)
{
	if (w->httpd) {
		MHD_stop_daemon(w->httpd);
		w->httpd = NULL;
	}
}
