/* status.h - what cordond tells about itself: systemd (READY, WATCHDOG,
 * STATUS), the /healthz and /metrics text (rendered here every 2 s and
 * handed to the HTTP thread of metrics.c), the periodic stats line, and
 * the stats message on <root>/_daemon/<client id>/stats every 10 s (SPEC
 * 2; docs/topics.md). */
#ifndef CORDON_STATUS_H
#define CORDON_STATUS_H

#include <stdint.h>

#include "config.h"

/* The stats message's interval (SPEC 2: every 10 s), ms. */
#define STATUS_MESSAGE_MS 10000

struct intake;
struct metrics;
struct pipeline;
struct publisher;
struct retention;
struct sessions;
struct store;

/* Embedded in the daemon; the pointers under "wiring" are its objects,
 * read only. */
struct status {
	const struct config *cfg;
	/* wiring */
	struct sessions *sessions; /* the instance's client and its shard sessions */
	struct store *store;
	const struct pipeline *pl;
	const struct publisher *pub;
	const struct intake *intake;
	const struct retention *retention; /* NULL: not started */

	struct metrics *metrics; /* NULL: running without them */
	int ready_sent;		 /* READY=1 told to systemd */
	int64_t watchdog_ms, last_watchdog_ms, last_status_ms;
	uint64_t last_received; /* for the rate in STATUS= */
	int64_t last_stats_ms;
	int64_t start_ms;	 /* status_start(): the uptime in the stats message */
	int64_t last_message_ms; /* the stats message last sent */
	double render_seconds;	 /* the last /metrics text took this long */
	char *open_text;	 /* cordon_alerts_open's samples, kept between renders */
	size_t open_cap;
};

void status_init(struct status *st, const struct config *cfg);
/* Starts the metrics' HTTP thread (running without it if it cannot) and
 * the intervals, from `now_ms`. */
void status_start(struct status *st, int64_t now_ms);
void status_finish(struct status *st);
void status_reconfigure(struct status *st, const struct config *cfg);
/* Each tick: READY once the broker is connected and has answered our
 * SUBSCRIBE (or intake is paused), WATCHDOG at half its interval, STATUS
 * and the metrics every 2 s, the stats message every STATUS_MESSAGE_MS
 * while the instance's client is connected, the stats line every
 * minute. */
void status_tick(struct status *st, int64_t now_ms);
/* Logs the stats line (also at the stop). */
void status_log_stats(struct status *st);

#endif
