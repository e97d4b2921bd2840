/* metrics.c - the HTTP side of the metrics: a libmicrohttpd daemon with
 * its own thread answering GET /metrics and GET /healthz from a copy of
 * the text the main loop last rendered. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct metrics {
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock;
	char *text;
	size_t len;
	int healthy;
	char reason[128];
};

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
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		snprintf(body, sizeof(body), "only GET\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	} else if (strcmp(url, "/metrics") == 0) {
		pthread_mutex_lock(&m->lock);
		resp = MHD_create_response_from_buffer(m->len, m->text ? m->text : (char *)"",
						       MHD_RESPMEM_MUST_COPY);
		pthread_mutex_unlock(&m->lock);
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

/* "127.0.0.1:9478" or "[::1]:9478" */
static int
parse_listen(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	long port;
	char *end;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[strlen(host) - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? AF_INET6 : -EINVAL;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? AF_INET : -EINVAL;
	}
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
	family = parse_listen(listen, &ss);
	if (family < 0)
		return family;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	snprintf(m->reason, sizeof(m->reason), "starting");
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
				  (family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, answer, m,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, 16U,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10U,
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
metrics_publish(struct metrics *m, const char *text, size_t len, int healthy,
		const char *reason)
{
	char *copy;

	if (!m)
		return;
	copy = malloc(len + 1);
	if (!copy)
		return;
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&m->lock);
	free(m->text);
	m->text = copy;
	m->len = len;
	m->healthy = healthy;
	snprintf(m->reason, sizeof(m->reason), "%s", reason ? reason : "");
	pthread_mutex_unlock(&m->lock);
}
