/* metrics.c - the HTTP side of the metrics: a libmicrohttpd daemon with
 * its own thread answering GET /metrics and GET /healthz from a copy of
 * the text the main loop last rendered.
 *
 * Slow or idle clients ("slowloris": a request trickled a byte at a time,
 * or a connection opened and never used) must not keep /healthz from
 * answering. libmicrohttpd's connection timeout counts idle time, which a
 * trickle resets, and past its connection limit new connections wait in
 * the kernel's backlog. So cordon keeps a slot free itself: when a new
 * connection leaves fewer than METRICS_SPARE slots, the connection idle the
 * longest (no request answered since its last activity) is shut down. A
 * new client is therefore always accepted at once and served in the same
 * poll round; the clients pushed out are the ones holding a slot longest.
 * All of it runs in libmicrohttpd's single polling thread. */
#include "config.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clocks.h"
#include "log.h"

#define METRICS_CONNECTIONS 32 /* libmicrohttpd's connection limit */
#define METRICS_SPARE 4	       /* slots kept free for new clients */
#define METRICS_IDLE_S 5U      /* libmicrohttpd's idle timeout, seconds */

/* One open connection, as the notify callback saw it. */
struct metrics_conn {
	struct MHD_Connection *conn; /* NULL: the slot is free */
	int fd;
	int64_t active_ms; /* accepted, or last answered (CLOCK_MONOTONIC) */
};

struct metrics {
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	char *text;
	size_t len;
	int healthy;
	char reason[128];
	/* libmicrohttpd's polling thread only */
	struct metrics_conn conns[METRICS_CONNECTIONS];
	unsigned nconns;
	uint64_t evicted; /* connections pushed out for a new one */
};

static struct metrics_conn *
conn_find(struct metrics *m, const struct MHD_Connection *conn)
{
	for (unsigned i = 0; i < METRICS_CONNECTIONS; i++)
		if (m->conns[i].conn == conn)
			return &m->conns[i];
	return NULL;
}

/* MHD_NotifyConnectionCallback: tracks open connections, and when a new
 * one leaves fewer than METRICS_SPARE slots free, shuts down the socket of
 * the connection idle the longest (libmicrohttpd then sees it closed and
 * cleans it up). The socket is still open here: libmicrohttpd reports
 * MHD_CONNECTION_NOTIFY_CLOSED before it closes a connection's socket, so
 * an fd in the table is never one reused by another connection. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	      enum MHD_ConnectionNotificationCode code)
{
	struct metrics *m = cls;
	struct metrics_conn *c, *oldest = NULL;
	const union MHD_ConnectionInfo *info;

	(void)socket_context;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if ((c = conn_find(m, conn))) {
			c->conn = NULL;
			m->nconns--;
		}
		return;
	}
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info || !(c = conn_find(m, NULL)))
		return;
	*c = (struct metrics_conn){ .conn = conn,
				    .fd = info->connect_fd,
				    .active_ms = clocks_mono_ms() };
	m->nconns++;
	if (m->nconns + METRICS_SPARE <= METRICS_CONNECTIONS)
		return;
	for (unsigned i = 0; i < METRICS_CONNECTIONS; i++) {
		c = &m->conns[i];
		if (c->conn && c->conn != conn && c->fd >= 0 &&
		    (!oldest || c->active_ms < oldest->active_ms))
			oldest = c;
	}
	if (oldest) {
		shutdown(oldest->fd, SHUT_RDWR);
		oldest->fd = -1; /* shut down once */
		if (m->evicted++ == 0)
			log_warn(
				"metrics: %u HTTP connections open, shut down the one idle the "
				"longest to admit a new client (slow or idle clients on the metrics "
				"port; counted in cordon_metrics_connections_evicted_total)",
				m->nconns);
	}
}

void
histogram_observe(struct histogram *h, double v)
{
	int i = 0;

	while (i < HIST_BUCKETS && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

void
histogram_print(const struct histogram *h, const char *name, const char *labels, void *stream)
{
	FILE *f = stream;
	uint64_t cum = 0;
	const char *sep = labels ? "," : "";

	labels = labels ? labels : "";
	for (int i = 0; i < HIST_BUCKETS; i++) {
		cum += h->counts[i];
		fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
			(unsigned long long)cum);
	}
	cum += h->counts[HIST_BUCKETS];
	fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
	if (labels[0])
		fprintf(f, "%s_sum{%s} %g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
			(unsigned long long)h->count);
	else
		fprintf(f, "%s_sum %g\n%s_count %llu\n", name, h->sum, name,
			(unsigned long long)h->count);
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct metrics *m = cls;
	struct MHD_Response *resp;
	const char *type = "text/plain; charset=utf-8";
	unsigned status = MHD_HTTP_OK;
	char body[256];
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)upload_size;
	(void)con_cls;
	{
		struct metrics_conn *c = conn_find(m, conn);

		if (c)
			c->active_ms = clocks_mono_ms();
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		snprintf(body, sizeof(body), "only GET\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	} else if (strcmp(url, "/metrics") == 0) {
		char *text;
		int n;

		/* The main loop's text, and this thread's own counter. */
		pthread_mutex_lock(&m->lock);
		n = asprintf(&text,
			     "%.*s# HELP cordon_metrics_connections_evicted_total HTTP connections "
			     "to this port shut down, idle the longest, to admit a new one.\n"
			     "# TYPE cordon_metrics_connections_evicted_total counter\n"
			     "cordon_metrics_connections_evicted_total %llu\n",
			     (int)m->len, m->text ? m->text : "", (unsigned long long)m->evicted);
		pthread_mutex_unlock(&m->lock);
		if (n < 0)
			return MHD_NO;
		resp = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(text);
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strcmp(url, "/healthz") == 0) {
		pthread_mutex_lock(&m->lock);
		status = m->healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
		snprintf(body, sizeof(body), "%s\n", m->healthy ? "ok" : m->reason);
		pthread_mutex_unlock(&m->lock);
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	} else {
		snprintf(body, sizeof(body), "not found: try /metrics or /healthz\n");
		status = MHD_HTTP_NOT_FOUND;
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

int
metrics_start(const char *listen, struct metrics **ret_metrics)
{
	struct sockaddr_storage ss;
	struct metrics *m;
	int family;

	*ret_metrics = NULL;
	if (strcmp(listen, "off") == 0)
		return 0;
	family = config_parse_listen(listen, &ss);
	if (family < 0)
		return family;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	snprintf(m->reason, sizeof(m->reason), "starting");
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
					  (family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
				  (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				  METRICS_IDLE_S, MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
				  MHD_OPTION_END);
	if (!m->mhd) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return -EADDRINUSE;
	}
	*ret_metrics = m;
	return 0;
}

void
metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}

void
metrics_publish(struct metrics *m, const char *text, size_t len, const char *tail, size_t tail_len,
		int healthy, const char *reason)
{
	char *copy;

	if (!m)
		return;
	if (!tail)
		tail_len = 0;
	copy = malloc(len + tail_len + 1);
	if (!copy)
		return;
	memcpy(copy, text, len);
	if (tail_len)
		memcpy(copy + len, tail, tail_len);
	len += tail_len;
	copy[len] = '\0';
	pthread_mutex_lock(&m->lock);
	free(m->text);
	m->text = copy;
	m->len = len;
	m->healthy = healthy;
	snprintf(m->reason, sizeof(m->reason), "%s", reason ? reason : "");
	pthread_mutex_unlock(&m->lock);
}
