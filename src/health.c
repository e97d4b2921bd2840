/* health.c - the backlog and client_id_conflict alerts. */
#include "health.h"

#include <stdio.h>
#include <string.h>

#include "clocks.h"
#include "intake.h"
#include "log.h"
#include "spool.h"
#include "store.h"

void
health_init(struct health *h, const struct config *cfg)
{
	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
}

void
health_reconfigure(struct health *h, const struct config *cfg)
{
	h->cfg = cfg;
}

/* backlog: the spool directory deleted or replaced, or the spool not
 * writable; PostgreSQL unreachable, or refusing our writes (a held batch),
 * for over 60 s; or the spool over 80 % of max_bytes. */
static void
check_backlog(struct health *h, int64_t now)
{
	uint64_t used = spool_bytes(h->spool);
	struct rules_clock rnow;
	struct store_stats ss;
	char why[64] = "";

	store_get_stats(h->store, &ss);
	if (ss.db_up && !ss.writes_held)
		h->db_down_since_ms = 0;
	else if (h->db_down_since_ms == 0)
		h->db_down_since_ms = now;
	/* The alert's reason holds 31 characters: the SQLSTATE says which
	 * refusal; the log line and /metrics carry the message. */
	if (h->intake->dir_state != SPOOL_DIR_OK)
		snprintf(why, sizeof(why), "spool directory %s",
			 h->intake->dir_state == SPOOL_DIR_DELETED ? "deleted" : "replaced");
	else if (h->intake->write_err)
		snprintf(why, sizeof(why), "spool not writable");
	else if (h->db_down_since_ms && now - h->db_down_since_ms > 60000 && ss.writes_held)
		snprintf(why, sizeof(why), "PostgreSQL refuses writes %.5s", ss.held_sqlstate);
	else if (h->db_down_since_ms && now - h->db_down_since_ms > 60000)
		snprintf(why, sizeof(why), "PostgreSQL unreachable for %lld s",
			 (long long)(now - h->db_down_since_ms) / 1000);
	else if (used * 5 > (uint64_t)h->cfg->spool_max_bytes * 4)
		snprintf(why, sizeof(why), "spool over 80%% full");
	rnow = clocks_rules_now();
	if (rules_backlog(h->rules, h->cfg->mqtt_client_id, why[0] != '\0', why, &rnow, h->out) < 0)
		log_err("out of memory in the backlog rule");
}

/* client_id_conflict: MQTT_CONFLICT_COUNT takeovers of our client id
 * within MQTT_CONFLICT_WINDOW_MS, seen as the broker's DISCONNECT 0x8E or,
 * from a broker that gives no reason (Mosquitto before 2.0.15), as quiet
 * drops; resolved after MQTT_CONFLICT_QUIET_MS without one. */
static void
check_conflict(struct health *h, const struct mqtt_client_stats *is, int64_t now)
{
	uint64_t seen = is->taken_over + is->quiet_drops;
	struct rules_clock rnow;
	char why[32];
	int trouble;

	trouble = mqtt_conflict_update(h->conflict, (unsigned)(seen - h->conflict_seen), now);
	h->conflict_seen = seen;
	snprintf(why, sizeof(why),
		 is->taken_over ? "session taken over %u times" : "%u drops without a reason",
		 mqtt_conflict_recent(h->conflict, now));
	rnow = clocks_rules_now();
	if (rules_client_id_conflict(h->rules, h->cfg->mqtt_client_id, trouble, why, &rnow,
				     h->out) < 0)
		log_err("out of memory in the client_id_conflict rule");
}

void
health_tick(struct health *h, const struct mqtt_client_stats *is, int64_t now_ms)
{
	check_backlog(h, now_ms);
	check_conflict(h, is, now_ms);
}
