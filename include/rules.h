/* rules.h - the alert engine (SPEC 4): rule state, the catalogue, and the
 * alert lifecycle raised -> (acked) -> resolved.
 *
 * Pure: no I/O and no clock reads. Events and ticks come in with the time
 * (struct rules_clock); transitions come out into a list that the caller
 * publishes and stores. The register is read through the snapshot the
 * caller passes.
 *
 * Clocks (docs/architecture.md, "Clocks"): every deadline is measured on
 * the monotonic clock, so that a step of the wall clock (NTP setting it,
 * an operator's `date -s`) neither blinds a timer nor fires it early. The
 * wall clock is used only for what is shown and stored (an alert's times)
 * and for what is calendar-based: whether an isolation order is in force,
 * and the 06:00-22:00 local day of disinfection intervals. Wall times from
 * outside (an event's time, a time restored from PostgreSQL) are put on
 * the monotonic clock once, when they come in, by their age on the wall
 * clock then. */
#ifndef CORDON_RULES_H
#define CORDON_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "normalize.h"
#include "registry.h"

#define RULES_SUBJECT_MAX (NORM_ID_MAX + 24)
/* The subject of a site's aggregate alert of one kind: the subjects past
 * max_open_alerts fold into it (no subject of an event can be "*"). */
#define RULES_AGGREGATE "*"
#define RULES_SAMPLE 4 /* subjects an aggregate shows */
#define RULES_SAMPLE_MAX (RULES_SAMPLE * RULES_SUBJECT_MAX)
/* An aggregate into which nothing was folded for this long is resolved. */
#define RULES_FOLD_QUIET_US (3600LL * 1000000)

/* Now, as two clocks read together by the caller: wall_us is
 * CLOCK_REALTIME, microseconds since the epoch (UTC); mono_us is
 * CLOCK_MONOTONIC, microseconds from any origin (it must only never go
 * back within one engine). */
struct rules_clock {
	int64_t wall_us;
	int64_t mono_us;
};

struct rules_config {
	int16_t fever_dc; /* tenths of a degree C */
	int16_t critical_dc;
	int64_t recheck_window_us;
	int64_t check_interval_us; /* default for orders without one */
	int64_t check_grace_us;
	int64_t silence_timeout_us;
	int64_t exit_quota; /* 0: off */
	int64_t exit_window_us;
	int64_t disinfection_interval_us; /* default for zones without one */
	int64_t hotline_medical_us;
	int64_t hotline_other_us;
	int64_t repeat_interval_us;
	int64_t max_open_alerts; /* per site and kind; past it subjects fold */
};

enum alert_kind {
	KIND_FEVER,
	KIND_ISOLATION_OVERDUE,
	KIND_ISOLATION_SYMPTOM,
	KIND_ISOLATION_BREACH,
	KIND_SEALED_GATE,
	KIND_GATE_SILENT,
	KIND_UNKNOWN_CARD,
	KIND_EXIT_QUOTA,
	KIND_DISINFECTION_OVERDUE,
	KIND_HOTLINE_UNRESOLVED,
	KIND_BACKLOG,
	KIND_CLIENT_ID_CONFLICT,
	KIND_COUNT,
};

enum alert_severity {
	SEVERITY_INFO,
	SEVERITY_WARNING,
	SEVERITY_CRITICAL,
};

enum alert_state {
	ALERT_RAISED,
	ALERT_ACKED,
	ALERT_RESOLVED,
};

/* One alert: its current state. */
struct alert {
	char alert_id[33];
	enum alert_kind kind;
	enum alert_severity severity;
	enum alert_state state;
	char site[NORM_ID_MAX + 1];
	char subject[RULES_SUBJECT_MAX];
	char event_key[NORM_STORED_KEY_MAX]; /* the first triggering event */
	/* That event's content hash (tables_content_hash()); all zero when
	 * no event raised the alert (a timer). The store points the alert at
	 * the event's own row when its device reused the key (sql/0006). */
	uint8_t event_hash[NORM_HASH_LEN];
	char gate[NORM_ID_MAX + 1];
	char household[NORM_ID_MAX + 1];
	char card[NORM_ID_MAX + 1];
	char zone[NORM_ID_MAX + 1];
	char call_id[NORM_ID_MAX + 1];
	int16_t temp_dc;			    /* TEMP_NONE when not a reading */
	int64_t raised_us, updated_us, resolved_us; /* wall clock, us since the epoch */
	int64_t published_mono_us;		    /* last transition handed out (the engine's
					 * monotonic time; set by the engine) */
	uint32_t count;				    /* triggers so far */
	uint32_t published_count;		    /* count at the last transition */
	char reason[32];			    /* why it was resolved */
	char by[NORM_ID_MAX + 1];		    /* who acked or resolved it */
	/* An aggregate (subject RULES_AGGREGATE) only: the distinct subjects
	 * folded into it (exact up to 256, then a HyperLogLog estimate, see
	 * rules.c), and the first RULES_SAMPLE of them, ' '-separated. */
	uint32_t distinct;
	char sample[RULES_SAMPLE_MAX];
};

/* A transition to publish and store: the alert as it is after it. */
struct alert_transition {
	struct alert a;
	const char *what; /* "raised", "updated", "acked", "resolved" */
};

struct rules_output {
	struct alert_transition *t;
	size_t n, cap;
	/* An ack that named no open alert: what to tell the integrator. */
	char reject_site[NORM_ID_MAX + 1];
	char reject_reason[96];
};

struct rules;

/* A new engine started at `now` (gates are silent from then at the
 * earliest). Returns 0 or -ENOMEM. */
int rules_create(const struct rules_config *cfg, const struct rules_clock *now,
		 struct rules **ret_rules) __attribute__((warn_unused_result));
void rules_destroy(struct rules *r);
void rules_set_config(struct rules *r, const struct rules_config *cfg);
/* Tells whether messages can arrive (broker connected, intake not
 * paused); gate_silent is not judged while they cannot. */
void rules_intake(struct rules *r, int flowing, const struct rules_clock *now);

/* Applies one event, processed at `now`. The alerts it raises or resolves
 * carry the event's rule time (ev->rule_us) as their time, so that a
 * replay yields the same alert ids. Returns 0 or -ENOMEM. */
int rules_event(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
		const struct rules_clock *now, struct rules_output *out)
	__attribute__((warn_unused_result));
/* Runs the timer rules (overdue, silent, quotas, repeats) at `now`.
 * Returns 0 or -ENOMEM. */
int rules_tick(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	       struct rules_output *out) __attribute__((warn_unused_result));
/* The instance-level backlog alert: raised while `trouble` is set (its
 * text in `why`), resolved when it clears. Returns 0 or -ENOMEM. */
int rules_backlog(struct rules *r, const char *instance, int trouble, const char *why,
		  const struct rules_clock *now, struct rules_output *out)
	__attribute__((warn_unused_result));

/* The instance-level client_id_conflict alert (another MQTT client
 * taking our client id): raised while `trouble` is set (`why`, up to 31
 * bytes, says how often), resolved when it clears. Returns 0 or -ENOMEM. */
int rules_client_id_conflict(struct rules *r, const char *instance, int trouble, const char *why,
			     const struct rules_clock *now, struct rules_output *out)
	__attribute__((warn_unused_result));

/* Restores an open alert (from PostgreSQL at start); its times are wall
 * times (its last update is taken as its last publication). Past
 * max_open_alerts for its site and kind (a database from before the
 * bound), the alert is folded instead: its subject joins the aggregate
 * (raised in `out` when new) and the alert itself is resolved in `out`
 * with reason "folded", so that the caller stores that and clears its
 * retained state. An aggregate is restored with its distinct count and
 * sample. Returns 0 (restored), 1 (folded) or -ENOMEM. */
int rules_restore_alert(struct rules *r, const struct alert *a, const struct rules_clock *now,
			struct rules_output *out) __attribute__((warn_unused_result));
/* Whether `a` is an aggregate alert (subject RULES_AGGREGATE). */
bool rules_is_aggregate(const struct alert *a);
/* Restores the last time something was seen: a gate's message, a
 * disinfection, a check (household, person or ""), an open urgent call
 * (what "call": its open time; category), a resolved call (what
 * "call_resolved": its resolve time; a call resolved is never restored or
 * followed as open, whichever of the two comes first), an outward pass of
 * a household, a sealed gate's latest `closed` (what "seal_closed") or
 * latest breach (what "seal_breach": a pass, or an open or forced status),
 * by rule time (kept as wall times: the latest of each wins). at_us is a
 * wall time (us since the epoch), put on the monotonic clock by its age at
 * `now` (a time later than now counts as now). Returns 0, -ENOMEM, or
 * -EINVAL for an unknown `what`. */
int rules_restore_seen(struct rules *r, const char *what, const char *site, const char *id,
		       const char *sub, int64_t at_us, const struct rules_clock *now)
	__attribute__((warn_unused_result));

/* Entries of the rule state (open alerts, last-seen times, calls, exit
 * rings, counts), for tests and benchmarks of its bound. */
size_t rules_entries(const struct rules *r);

/* Open alerts, for the retained topic at start and for cordonctl. */
size_t rules_open_alerts(struct rules *r, const struct alert **ret, size_t max);

void rules_output_clear(struct rules_output *out);
void rules_output_free(struct rules_output *out);

const char *rules_kind_name(enum alert_kind k);
int rules_kind_from_name(const char *name);
const char *rules_severity_name(enum alert_severity s);
const char *rules_state_name(enum alert_state s);

/* alert_id: hex of a 128-bit hash of site, kind, subject and the first
 * triggering event's key, so that a replay yields the same id. */
void rules_alert_id(const char *site, const char *kind, const char *subject, const char *event_key,
		    char ret_id[33]);

/* Seconds between from and to that fall between 06:00 and 22:00 local
 * time in zone tz (disinfection intervals count only those hours). */
int64_t rules_daytime_elapsed(const struct tz *tz, int64_t from_s, int64_t to_s);

#endif
