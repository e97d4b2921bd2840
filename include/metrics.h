/* metrics.h - Prometheus text on /metrics and a health check on /healthz
 * (libmicrohttpd, its own thread). The main loop renders the text; the
 * HTTP thread only serves the latest copy. */
#ifndef CORDON_METRICS_H
#define CORDON_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct metrics;

/* Listens on "HOST:PORT" (IPv4 or [IPv6]); "off" gives NULL and 0. */
int metrics_start(const char *listen, struct metrics **ret_metrics)
	__attribute__((warn_unused_result));
void metrics_stop(struct metrics *m);
/* Replaces what /metrics and /healthz answer: the metrics are `text`
 * followed by `tail` (NULL: none), both copied. */
void metrics_publish(struct metrics *m, const char *text, size_t len, const char *tail,
		     size_t tail_len, int healthy, const char *health_reason);

/* Writes label value `v` at p as the text format escapes it (Prometheus
 * "Exposition formats", text format: backslash, double quote and line
 * feed as \\, \" and \n), without the quotes, in room for 2 * strlen(v)
 * bytes; returns the end. A site id is [A-Za-z0-9_-], but a site restored
 * from an alerts row of PostgreSQL (no CHECK there) can hold anything. */
static inline char *
metrics_put_label_value(char *p, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n')
			*p++ = '\\';
		*p++ = *v == '\n' ? 'n' : *v;
	}
	return p;
}

/* A fixed-bucket histogram (upper bounds in the unit of the metric). */
#define HIST_BUCKETS 12
struct histogram {
	const double *bounds;		   /* HIST_BUCKETS upper bounds, ascending */
	uint64_t counts[HIST_BUCKETS + 1]; /* the last: +Inf */
	double sum;
	uint64_t count;
};

void histogram_observe(struct histogram *h, double v);
/* Appends the Prometheus text of h as `name` with optional labels
 * ("kind=\"fever\"" or NULL) to a memstream. */
void histogram_print(const struct histogram *h, const char *name, const char *labels, void *stream);

#endif
