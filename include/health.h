/* health.h - cordond's alerts about itself, judged every second with the
 * timer rules: `backlog` (the spool directory gone, the spool not
 * writable, PostgreSQL unreachable or refusing writes for over 60 s, the
 * spool over 80 % full) and `client_id_conflict` (another client taking
 * our client id). The transitions go to the rules' output. */
#ifndef CORDON_HEALTH_H
#define CORDON_HEALTH_H

#include <stdint.h>

#include "config.h"
#include "mqtt_client.h"
#include "mqtt_watch.h"
#include "rules.h"

struct intake;
struct spool;
struct store;

/* Embedded in the daemon; the pointers under "wiring" are its objects. */
struct health {
	const struct config *cfg;
	/* wiring */
	struct spool *spool;
	struct store *store;
	const struct intake *intake;
	struct rules *rules;
	struct rules_output *out;
	struct mqtt_conflict *conflict; /* the daemon's (restored at start) */

	uint64_t conflict_seen;	  /* takeovers and quiet drops noted */
	int64_t db_down_since_ms; /* 0 while PostgreSQL is up */
};

void health_init(struct health *h, const struct config *cfg);
void health_reconfigure(struct health *h, const struct config *cfg);
/* Judges both alerts at `now_ms` from the client's stats `is`. */
void health_tick(struct health *h, const struct mqtt_client_stats *is, int64_t now_ms);

#endif
