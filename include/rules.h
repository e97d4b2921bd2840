/* rules.h - the alert engine (SPEC 4): rule state, the rules of the
 * catalogue, and the alert lifecycle raised -> (acked) -> resolved. What an
 * alert is (struct alert, the kinds table) is alert_state.h's.
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

#include "alert_state.h"
#include "map.h"
#include "normalize.h"
#include "registry.h"

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
	int64_t max_open_alerts;      /* per site and kind; past it subjects fold */
	int64_t cards_per_household;  /* active ordinary cards allowed; 0: off */
	int64_t need_assign_limit_us; /* need_overdue: open to assigned */
	int64_t call_deadline_s;      /* call_missed: seconds after local midnight */
	int64_t dropoff_limit_us;     /* dropoff_uncollected */
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

/* The sites the engine acts for (a clustered instance: those of the
 * shards it owns, docs/scaling.md): in_scope(ctx, site) says whether it
 * acts for `site`; NULL (the default) is every site. Out of scope, an
 * event is ignored (rules_event returns 0 and changes nothing: the caller
 * decides which events to judge, with the same view as the predicate),
 * and the timers and the register's rules (rules_tick, rules_register)
 * neither raise, update nor resolve anything of the site; what the engine
 * holds of it stays until rules_forget_sites(). The instance-level alerts
 * (backlog, client_id_conflict) are in every scope. The predicate is
 * called from the engine's calls only, at most once a site in a row (the
 * register's arrays come by site), and must answer the same during one
 * call. */
void rules_set_scope(struct rules *r, bool (*in_scope)(void *ctx, const char *site), void *ctx);
/* Forgets every piece of state of the sites for which keep(ctx, site) is
 * false (keep NULL: the scope's predicate; no scope: nothing): open
 * alerts (nothing is published: the site's new owner carries them on
 * from PostgreSQL), their aggregates and counts, last-seen times of
 * gates, zones and checks, calls followed and resolved, seals, exit
 * rings, fever readings, card_exception's memory, needs, welfare reaches,
 * drop-offs. The instance-level alerts stay. One pass over the state:
 * O(entries), each map bounded (rules.c), 0.3 to 0.5 us an entry (50,000
 * in 15 to 25 ms on a 2-core machine: test_rules_scope); keep is called
 * once per entry. Restoring the same rows afterwards
 * (rules_restore_alert, rules_restore_seen) gives the same alerts under
 * the same ids. Returns the entries dropped. */
size_t rules_forget_sites(struct rules *r, bool (*keep)(void *ctx, const char *site), void *ctx);

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
/* The register's rules (card_exception): judges the snapshot `reg` the
 * caller took at `now` (at start and at every register hand-over, and
 * after a SIGHUP), not events. A household holding more active ordinary
 * (neither revoked nor extra) cards than cards_per_household raises one
 * alert, subject household:<household>, whose id is the same for the same
 * set of cards; raised once: one an operator resolved is not raised again
 * while the set stays the same (across restarts through
 * rules_restore_seen). A household whose set changed has its open alert
 * resolved ("register changed") and a new one raised; one without the
 * excess any more has it resolved ("register corrected", or "check off"
 * when cards_per_household is 0). Only the sites whose households and
 * cards changed since they were last judged (or all, after
 * cards_per_household changed) are walked: O(c log c) for their c cards.
 * Its memory is one entry (some 100 bytes) per household raised for,
 * forgotten when the household leaves the register. Returns 0 or
 * -ENOMEM. */
int rules_register(struct rules *r, const struct registry_snapshot *reg,
		   const struct rules_clock *now, struct rules_output *out)
	__attribute__((warn_unused_result));
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
/* Restores the last time something was seen (alert_state.h, struct
 * alert_seen) as PostgreSQL had it at start: a gate's message, a
 * disinfection, a check (household, person or ""), an open urgent call
 * (its open time; category), a resolved call (its resolve time; a call
 * resolved is never restored or followed as open, whichever of the two
 * comes first), an outward pass of a household, a sealed gate's latest
 * `closed` or latest breach (a pass, or an open or forced status), by rule
 * time (kept as wall times: the latest of each wins); the people work's
 * rows (an open need's open, category, due and assignment, a need done, a
 * household's latest reach, an uncollected delivery and the latest
 * collection: rules.c's people section). x->at_us is put on
 * the monotonic clock by its age at `now` (a time later than now counts
 * as now), a household's latest card_exception alert (its id, its set of
 * cards, whether it is over). As at run time, only what the register `reg`
 * knows is kept: registered gates and zones, households under an order,
 * the seal state of gates registered sealed, registered households. Returns 0, 1 (not kept: the register does
 * not know it) or -ENOMEM. */
int rules_restore_seen(struct rules *r, const struct registry_snapshot *reg,
		       const struct alert_seen *x, const struct rules_clock *now)
	__attribute__((warn_unused_result));

/* Entries of the rule state (open alerts, last-seen times, calls, exit
 * rings, counts), for tests and benchmarks of its bound. */
size_t rules_entries(const struct rules *r);

/* Open alerts, for the retained topic at start and for cordonctl. */
size_t rules_open_alerts(struct rules *r, const struct alert **ret, size_t max);

/* The open alerts of one site and kind, by state; an aggregate alert
 * counts as one. */
struct rules_open {
	char site[NORM_ID_MAX + 1];
	enum alert_kind kind;
	uint32_t raised; /* not acked */
	uint32_t acked;
};
/* Iterates the sites and kinds with at least one open alert, in no
 * order, from counts kept as alerts open, change state and close (no
 * pass over the alerts): for (size_t it = 0; rules_open_next(r, &it,
 * &o);). Returns false past the last. */
bool rules_open_next(const struct rules *r, size_t *iter, struct rules_open *ret);
/* Every open alert (an aggregate as one): raised (not acked) and acked. */
void rules_open_totals(const struct rules *r, uint64_t *ret_raised, uint64_t *ret_acked);

void rules_output_clear(struct rules_output *out);
void rules_output_free(struct rules_output *out);

/* alert_id: hex of a 128-bit hash of site, kind, subject and the first
 * triggering event's key, so that a replay yields the same id. */
void rules_alert_id(const char *site, const char *kind, const char *subject, const char *event_key,
		    char ret_id[33]);

/* Seconds between from and to that fall between 06:00 and 22:00 local
 * time in zone tz (disinfection intervals count only those hours). */
int64_t rules_daytime_elapsed(const struct tz *tz, int64_t from_s, int64_t to_s);

#endif
