/* rules.c - the alert engine (SPEC 4).
 *
 * State lives in string-keyed maps (map.c), keys joined by '\x1f':
 *   alerts   site|kind|subject -> struct alert (open alerts)
 *   by_id    alert_id -> the same struct alert
 *   gates    site|gate -> last message              gate_silent
 *   checks   site|household|person -> last check   isolation_overdue
 *   zones    site|zone -> last disinfection        disinfection_overdue
 *   calls    site|call_id -> struct call           hotline_unresolved
 *   resolved site|call_id -> struct resolved     hotline_unresolved
 *   seals    site|gate -> struct seal              sealed_gate
 *   exits    site|household -> struct ring         exit_quota
 *   nopen    site|kind -> open alerts but the aggregate (intptr)
 *   bystate  site|kind -> struct open_states: open alerts by state, the
 *            aggregate counted as one (cordon_alerts_open)
 *   readings site|subject -> struct readings       fever (recheck order)
 *   cardx    site -> struct cardx_site             card_exception
 *            (its hh: household -> struct cardx)
 *   needs, welfare, drops: the people work (issue 16), at the end
 *
 * Clocks. Every time kept for a deadline is a monotonic time ("mono":
 * CLOCK_MONOTONIC as the caller gives it, plus MONO_BIAS), and every
 * deadline is a difference of two of them: a step of the wall clock moves
 * none. Per rule:
 *   gate_silent     from when the engine processed the gate's last message
 *                   (the device's time is not used: a gate with a wrong
 *                   clock still talks), or from the start or the end of an
 *                   intake pause, whichever is later;
 *   isolation_overdue, disinfection_overdue, hotline_unresolved, exit_quota
 *                   from the event's rule time (the device's time, or the
 *                   receive time when the device clock is off by more than
 *                   max_clock_skew: what happened when is data), put on the
 *                   monotonic clock by its age on the wall clock when the
 *                   event is processed (never later than then);
 *   fever recheck   between the two readings' rule times (both data);
 *   repeat_interval from the last publication, monotonic.
 * The wall clock decides only what is calendar-based: whether an isolation
 * order is in force now, and the 06:00-22:00 local hours that a
 * disinfection interval counts (the monotonic time since the last
 * disinfection is laid back from the wall clock's now). An alert's times
 * (raised, updated, resolved) are wall times: the event's rule time for
 * alerts that events raise or resolve (a replay yields the same alert id),
 * the caller's wall clock for the timers.
 *
 * Bounds. Keys come from what arrives, so each map is bounded: a site
 * holds at most max_open_alerts open alerts of one kind, the subjects past
 * it fold into one aggregate alert of that site and kind (subject "*",
 * struct aggregate below) that counts them in a fixed 1 KiB sketch; gates,
 * zones and checks hold only what the register knows (a registered gate
 * or zone, a household under an isolation order), exits only registered
 * households, seals only gates registered sealed when a message came;
 * calls at most RULES_CALLS_MAX open urgent calls, resolved
 * the RULES_RESOLVED_MAX calls resolved last (by the resolve's rule time).
 *
 * Order. Brokers and bridges reorder messages, so every rule that folds
 * the steps of one thing reaches the same state whatever order they come
 * in. A call's resolve is final: its id is kept in `resolved`, and an open
 * or update of that call arriving later neither opens it nor alerts (the
 * table hotline_calls keeps 'resolved' the same way, SQL in tables.c). A
 * sealed gate's state is the one of its latest message by rule time: a
 * breach (a pass, or a status open or forced) dated before the last
 * `closed` is raised and resolved at once ("re-sealed"), a `closed` dated
 * before the last breach resolves nothing; both times are restored at start
 * from gate_status and gate_events (rules_restore_seen). A subject's fever
 * alerts follow its readings in time order (struct readings, fever_rule).
 * A check dated before an isolation_overdue alert's raise resolves it only
 * if the order is no longer overdue (checked_in). Operators' acks and
 * resolves need nothing: an ack or resolve of an alert no longer open is
 * refused, and the first of an ack and a resolve to arrive wins. */
#include "rules.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#define SEP "\x1f"
#define RING 64
/* Open urgent calls followed for hotline_unresolved (about 200 bytes
 * each). Past it a new urgent call is not followed: 10,000 calls open at
 * once are a flood that the hotline's own system shows better. */
#define RULES_CALLS_MAX 10000
/* Resolved call ids remembered so that a late open is not taken for a new
 * call (a key and a pointer, about 100 bytes each). Past it the call
 * resolved earliest is forgotten: its open would have to arrive after
 * 10,000 later resolves to be followed again. */
#define RULES_RESOLVED_MAX 10000

/* A followed call: each field from the steps whatever their order. */
struct call {
	int64_t opened_mono;	/* the earliest open; the earliest step till one */
	int64_t medical_mono;	/* rule time (mono) of the step that gave medical */
	int64_t household_mono; /* and household: the latest such step wins */
	int opened;		/* an open step was seen */
	int medical;
	char household[NORM_ID_MAX + 1];
};

/* A sealed gate's latest re-seal and breach: rule times (wall, us). */
struct seal {
	int64_t closed_us;
	int64_t breach_us;
};

struct ring {
	int64_t t[RING]; /* mono */
	int n;
};

/* A resolved call remembered: its resolve time (mono), its place in
 * rules.rheap and its key in `resolved`. */
struct resolved {
	int64_t m;
	size_t pos;
	char key[];
};

/* Monotonic times in the engine carry this bias, so that one laid back
 * from a wall time long before the clock's origin (before the boot) is
 * still positive: 0 in a map means "never". 2^60 us is some 36,000 years. */
#define MONO_BIAS ((int64_t)1 << 60)

/* Distinct subjects folded into an aggregate, in 1 KiB whatever their
 * number: the 32-bit hashes (XXH3) of the first FOLD_EXACT subjects,
 * counted exactly; past that, a HyperLogLog (Flajolet et al. 2007) of
 * FOLD_HLL 8-bit registers made from the same hashes: 10 bits of the hash
 * pick the register, the remaining 22 give the rank. Its standard error
 * is 1.04 / sqrt(1024) = 3.3 %, with linear counting below 2.5 m. */
#define FOLD_EXACT 256
#define FOLD_HLL_BITS 10
#define FOLD_HLL (1u << FOLD_HLL_BITS)

struct sketch {
	uint32_t nexact; /* hashes in exact[], while !dense */
	bool dense;
	union {
		uint32_t exact[FOLD_EXACT];
		uint8_t hll[FOLD_HLL];
	} u;
};

/* An open aggregate alert: the alert first (the maps hold it as one). */
struct aggregate {
	struct alert a;
	int64_t last_mono; /* the last trigger folded into it (mono) */
	uint32_t base;	   /* distinct subjects restored (not in the sketch) */
	struct sketch sk;
};

struct rules {
	struct rules_config cfg;
	int64_t start_mono; /* silence is counted from here at the earliest */
	int intake_down;
	struct map alerts, by_id, gates, checks, zones, calls, resolved, seals, exits, nopen;
	struct map bystate;	 /* the open alerts by state, below */
	uint64_t open_states[2]; /* every open alert: raised, acked */
	struct map readings;
	struct map cardx;		  /* card_exception: the situations raised */
	unsigned cardx_gen;		  /* rules_register's pass */
	struct resolved **rheap;	  /* the values of `resolved`, a min-heap by m */
	int64_t pruned_mono;		  /* readings last pruned (rules_tick) */
	struct map needs, welfare, drops; /* the people work (issue 16), below */
	struct map missed;	    /* call_missed: site|household -> the local day raised + 1 */
	int64_t people_pruned_mono; /* needs done last pruned */
	/* The sites acted for (rules_set_scope; NULL: all), and the last
	 * site asked about in this pass with the answer: the register's
	 * arrays come by site, so one call per site and pass. */
	bool (*scope)(void *ctx, const char *site);
	void *scope_ctx;
	bool scope_known, scope_in;
	char scope_site[NORM_ID_MAX + 1];
};

static void cardx_site_free(void *v);

/* The people work's rules (issue 16), at the end of this file. */
static int people_event(struct rules *r, const struct registry_snapshot *reg,
			const struct event *ev, const struct rules_clock *t,
			struct rules_output *out);
static int tick_people(struct rules *r, const struct registry_snapshot *reg,
		       const struct rules_clock *now, struct rules_output *out);
static int people_restore_seen(struct rules *r, const struct registry_snapshot *reg,
			       const struct alert_seen *x, const struct rules_clock *t);

void
rules_alert_id(const char *site, const char *kind, const char *subject, const char *event_key,
	       char ret_id[33])
{
	XXH3_state_t st;
	XXH128_hash_t h;
	const char *parts[] = { site, kind, subject, event_key };

	XXH3_128bits_reset(&st);
	for (size_t i = 0; i < 4; i++)
		XXH3_128bits_update(&st, parts[i], strlen(parts[i]) + 1);
	h = XXH3_128bits_digest(&st);
	snprintf(ret_id, 33, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
}

static void
key2(char *buf, size_t len, const char *a, const char *b)
{
	snprintf(buf, len, "%s" SEP "%s", a, b);
}

static void
key3(char *buf, size_t len, const char *a, const char *b, const char *c)
{
	snprintf(buf, len, "%s" SEP "%s" SEP "%s", a, b, c);
}

/* The caller's clock with the bias on its monotonic time. */
static struct rules_clock
clock_in(const struct rules_clock *now)
{
	return (struct rules_clock){ .wall_us = now->wall_us, .mono_us = now->mono_us + MONO_BIAS };
}

/* Wall time wall_us on the engine's monotonic clock: as long before now
 * as the wall clock says it is; a time after now is now. */
static int64_t
mono_of(const struct rules_clock *t, int64_t wall_us)
{
	int64_t age = t->wall_us - wall_us;

	if (age < 0)
		age = 0;
	if (age > MONO_BIAS / 2)
		age = MONO_BIAS / 2;
	return t->mono_us - age;
}

/* Monotonic time m as the wall clock reads it now. */
static int64_t
wall_of(const struct rules_clock *t, int64_t m)
{
	return t->wall_us - (t->mono_us - m);
}

static int64_t
seen(const struct map *m, const char *key)
{
	return (int64_t)(intptr_t)map_get(m, key);
}

static int
set_seen(struct map *m, const char *key, int64_t us)
{
	if (us <= seen(m, key))
		return 0;
	return map_put(m, key, (void *)(intptr_t)us, NULL);
}

/* ---- scope: the sites the engine acts for (docs/scaling.md) ---- */

/* Forgets the last answer: the caller's view may have changed since the
 * last pass (each public entry point calls it first). */
static void
scope_pass(struct rules *r)
{
	r->scope_known = false;
}

static bool
in_scope(struct rules *r, const char *site)
{
	if (!r->scope)
		return true;
	if (r->scope_known && strcmp(r->scope_site, site) == 0)
		return r->scope_in;
	r->scope_in = r->scope(r->scope_ctx, site);
	snprintf(r->scope_site, sizeof(r->scope_site), "%s", site);
	r->scope_known = true;
	return r->scope_in;
}

static bool
alert_in_scope(struct rules *r, const struct alert *a)
{
	/* the instance-level kinds are in every scope */
	return alert_state_is_instance_kind(a->kind) || in_scope(r, a->site);
}

void
rules_set_scope(struct rules *r, bool (*in_scope_fn)(void *ctx, const char *site), void *ctx)
{
	r->scope = in_scope_fn;
	r->scope_ctx = ctx;
	scope_pass(r);
}

int
rules_create(const struct rules_config *cfg, const struct rules_clock *now,
	     struct rules **ret_rules)
{
	struct rules *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->start_mono = clock_in(now).mono_us;
	map_init(&r->alerts);
	map_init(&r->by_id);
	map_init(&r->gates);
	map_init(&r->checks);
	map_init(&r->zones);
	map_init(&r->calls);
	map_init(&r->resolved);
	map_init(&r->seals);
	map_init(&r->exits);
	map_init(&r->nopen);
	map_init(&r->bystate);
	map_init(&r->readings);
	map_init(&r->cardx);
	map_init(&r->needs);
	map_init(&r->welfare);
	map_init(&r->drops);
	map_init(&r->missed);
	*ret_rules = r;
	return 0;
}

void
rules_destroy(struct rules *r)
{
	if (!r)
		return;
	map_finish(&r->by_id, NULL);
	map_finish(&r->alerts, free);
	map_finish(&r->gates, NULL);
	map_finish(&r->checks, NULL);
	map_finish(&r->zones, NULL);
	map_finish(&r->calls, free);
	map_finish(&r->resolved, free);
	free(r->rheap);
	map_finish(&r->seals, free);
	map_finish(&r->exits, free);
	map_finish(&r->nopen, NULL);
	map_finish(&r->bystate, free);
	map_finish(&r->readings, free);
	map_finish(&r->cardx, cardx_site_free);
	map_finish(&r->needs, free);
	map_finish(&r->welfare, NULL);
	map_finish(&r->drops, free);
	map_finish(&r->missed, NULL);
	free(r);
}

void
rules_intake(struct rules *r, int flowing, const struct rules_clock *now)
{
	/* While nothing can arrive, silence means nothing: gates are timed
	 * again from when messages flow again. */
	if (!flowing)
		r->intake_down = 1;
	else if (r->intake_down) {
		r->intake_down = 0;
		r->start_mono = clock_in(now).mono_us;
	}
}

void
rules_set_config(struct rules *r, const struct rules_config *cfg)
{
	r->cfg = *cfg;
}

void
rules_output_clear(struct rules_output *out)
{
	out->n = 0;
	out->reject_site[0] = '\0';
	out->reject_reason[0] = '\0';
}

void
rules_output_free(struct rules_output *out)
{
	free(out->t);
	memset(out, 0, sizeof(*out));
}

/* Hands out a transition of `a` at `at` (the wall time it shows; the
 * monotonic time of its publication). */
static int
emit(struct rules_output *out, struct alert *a, const char *what, const struct rules_clock *at)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 16;
		struct alert_transition *t = realloc(out->t, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		out->t = t;
		out->cap = cap;
	}
	a->published_mono_us = at->mono_us;
	a->published_count = a->count;
	out->t[out->n].a = *a;
	out->t[out->n].what = what;
	out->n++;
	return 0;
}

static struct alert *
find(struct rules *r, enum alert_kind kind, const char *site, const char *subject)
{
	char key[3 * NORM_KEY_MAX];

	key3(key, sizeof(key), site, alert_state_kind_name(kind), subject);
	return map_get(&r->alerts, key);
}

/* Open alerts of a site and kind, the aggregate not counted. */
static int64_t
open_count(const struct rules *r, const char *site, enum alert_kind kind)
{
	char key[2 * NORM_KEY_MAX];

	key2(key, sizeof(key), site, alert_state_kind_name(kind));
	return (int64_t)(intptr_t)map_get(&r->nopen, key);
}

/* Counts an alert in or out of its site and kind; 0 or -ENOMEM (never
 * when counting out). */
static int
count_open(struct rules *r, const struct alert *a, int delta)
{
	char key[2 * NORM_KEY_MAX];
	intptr_t n;

	if (alert_state_is_aggregate(a))
		return 0;
	key2(key, sizeof(key), a->site, alert_state_kind_name(a->kind));
	n = (intptr_t)map_get(&r->nopen, key) + delta;
	if (n <= 0) {
		map_remove(&r->nopen, key);
		return 0;
	}
	return map_put(&r->nopen, key, (void *)n, NULL);
}

/* The open alerts of a site and kind by state (an aggregate is one). */
struct open_states {
	enum alert_kind kind;
	uint32_t n[2]; /* raised (not acked), acked */
};

/* Counts open alert `a`, in its state (raised or acked), in or out of its
 * site and kind; 0 or -ENOMEM (never when counting out). */
static int
count_state(struct rules *r, const struct alert *a, int delta)
{
	char key[2 * NORM_KEY_MAX];
	int i = a->state == ALERT_ACKED;
	struct open_states *o;

	key2(key, sizeof(key), a->site, alert_state_kind_name(a->kind));
	if (delta < 0) {
		o = map_get(&r->bystate, key);
		if (!o || !o->n[i])
			return 0;
		o->n[i]--;
		r->open_states[i]--;
		if (!o->n[0] && !o->n[1])
			free(map_remove(&r->bystate, key));
		return 0;
	}
	if (!(o = map_get_or_make(&r->bystate, key, sizeof(*o))))
		return -ENOMEM;
	o->kind = a->kind;
	o->n[i]++;
	r->open_states[i]++;
	return 0;
}

/* Moves raised alert `a` to the acked in its site and kind's count. */
static void
count_acked(struct rules *r, const struct alert *a)
{
	char key[2 * NORM_KEY_MAX];
	struct open_states *o;

	key2(key, sizeof(key), a->site, alert_state_kind_name(a->kind));
	o = map_get(&r->bystate, key);
	if (!o || !o->n[0])
		return;
	o->n[0]--;
	o->n[1]++;
	r->open_states[0]--;
	r->open_states[1]++;
}

/* Puts malloc'ed alert `a` into the maps; 0, or -ENOMEM (then it is in
 * none of them). */
static int
link_alert(struct rules *r, struct alert *a)
{
	char key[3 * NORM_KEY_MAX];
	int err;

	key3(key, sizeof(key), a->site, alert_state_kind_name(a->kind), a->subject);
	if ((err = map_put(&r->alerts, key, a, NULL)) < 0)
		return err;
	if ((err = map_put(&r->by_id, a->alert_id, a, NULL)) < 0 ||
	    (err = count_open(r, a, 1)) < 0) {
		map_remove(&r->alerts, key);
		map_remove(&r->by_id, a->alert_id);
		return err;
	}
	if ((err = count_state(r, a, 1)) < 0) {
		map_remove(&r->alerts, key);
		map_remove(&r->by_id, a->alert_id);
		(void)count_open(r, a, -1);
		return err;
	}
	return 0;
}

/* Takes open alert `a` out of the maps, in the state it is open in (call
 * it before the state becomes resolved). */
static void
unlink_alert(struct rules *r, struct alert *a)
{
	char key[3 * NORM_KEY_MAX];

	key3(key, sizeof(key), a->site, alert_state_kind_name(a->kind), a->subject);
	map_remove(&r->alerts, key);
	map_remove(&r->by_id, a->alert_id);
	(void)count_open(r, a, -1);
	(void)count_state(r, a, -1);
}

/* The id of alert `a` raised at `wall_us`. The trigger's time joins the
 * id: the same event key may trigger again after the first alert was
 * resolved (a bare "forced" has no record id). Replays see the same time
 * (the spool keeps it). */
static void
alert_id_of(struct alert *a, int64_t wall_us)
{
	char ek[NORM_STORED_KEY_MAX + 24];

	snprintf(ek, sizeof(ek), "%s@%" PRId64, a->event_key, wall_us);
	rules_alert_id(a->site, alert_state_kind_name(a->kind), a->subject, ek, a->alert_id);
}

/* A new open alert of `size` bytes (an alert, or an aggregate around
 * one) from template `t`, raised at `at` and put into the maps. Returns
 * it, or NULL when out of memory. */
static struct alert *
new_alert(struct rules *r, const struct alert *t, size_t size, const struct rules_clock *at)
{
	struct alert *a = calloc(1, size);

	if (!a)
		return NULL;
	*a = *t;
	a->state = ALERT_RAISED;
	a->count = 1;
	a->raised_us = a->updated_us = at->wall_us;
	a->resolved_us = 0;
	a->by[0] = '\0';
	/* A template with an id keeps it (card_exception: the situation's). */
	if (!a->alert_id[0])
		alert_id_of(a, at->wall_us);
	if (link_alert(r, a) < 0) {
		free(a);
		return NULL;
	}
	return a;
}

/* ---- folding: the distinct-subject sketch of an aggregate ---- */

static uint32_t
subject_hash(const char *subject)
{
	return (uint32_t)XXH3_64bits(subject, strlen(subject));
}

/* Returns whether a register grew. */
static bool
hll_add(struct sketch *sk, uint32_t h)
{
	uint32_t idx = h >> (32 - FOLD_HLL_BITS);
	uint32_t rest = h << FOLD_HLL_BITS;
	uint8_t rank = rest ? (uint8_t)(__builtin_clz(rest) + 1) : 32 - FOLD_HLL_BITS + 1;

	if (rank <= sk->u.hll[idx])
		return false;
	sk->u.hll[idx] = rank;
	return true;
}

/* Adds a subject's hash; returns whether the sketch changed (a subject
 * counted before never changes it). */
static bool
sketch_add(struct sketch *sk, uint32_t h)
{
	if (!sk->dense) {
		uint32_t copy[FOLD_EXACT];

		for (uint32_t i = 0; i < sk->nexact; i++)
			if (sk->u.exact[i] == h)
				return false;
		if (sk->nexact < FOLD_EXACT) {
			sk->u.exact[sk->nexact++] = h;
			return true;
		}
		memcpy(copy, sk->u.exact, sizeof(copy));
		memset(sk->u.hll, 0, sizeof(sk->u.hll));
		sk->dense = true;
		for (uint32_t i = 0; i < FOLD_EXACT; i++)
			hll_add(sk, copy[i]);
	}
	return hll_add(sk, h);
}

/* The distinct subjects added: exact up to FOLD_EXACT, then the
 * HyperLogLog estimate (linear counting while registers are empty, the
 * large-range correction of a 32-bit hash near 2^32). */
static uint32_t
sketch_count(const struct sketch *sk)
{
	const double m = FOLD_HLL, two32 = 4294967296.0;
	double sum = 0, e;
	unsigned zeros = 0;

	if (!sk->dense)
		return sk->nexact;
	for (uint32_t i = 0; i < FOLD_HLL; i++) {
		sum += ldexp(1.0, -sk->u.hll[i]);
		zeros += sk->u.hll[i] == 0;
	}
	e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (e <= 2.5 * m && zeros)
		e = m * log(m / zeros);
	else if (e > two32 / 30)
		e = e >= two32 ? two32 : -two32 * log(1 - e / two32);
	if (e < FOLD_EXACT)
		e = FOLD_EXACT;
	return e >= UINT32_MAX ? UINT32_MAX : (uint32_t)(e + 0.5);
}

/* Folds `subject` into aggregate `g`; returns whether it was new. */
static bool
fold_subject(struct aggregate *g, const char *subject)
{
	struct alert *a = &g->a;
	uint64_t n;
	size_t len, words = 0;

	if (!sketch_add(&g->sk, subject_hash(subject)))
		return false;
	n = (uint64_t)g->base + sketch_count(&g->sk);
	n = n > UINT32_MAX ? UINT32_MAX : n;
	// cppcheck-suppress knownConditionTrueFalse ; wrong: n grows with the sketch
	if (n > a->distinct)
		a->distinct = (uint32_t)n;
	len = strlen(a->sample);
	for (size_t i = 0; i < len; i++)
		words += a->sample[i] == ' ';
	if (len == 0 || words + 1 < ALERT_SAMPLE)
		snprintf(a->sample + len, sizeof(a->sample) - len, "%s%s", len ? " " : "", subject);
	return true;
}

/* The trigger `t` of a site and kind that has max_open_alerts open: into
 * the aggregate of that site and kind (raised with it when none is open;
 * repeats published as trigger() does). */
static int
fold(struct rules *r, struct rules_output *out, const struct alert *t, const struct rules_clock *at)
{
	struct aggregate *g = (struct aggregate *)find(r, t->kind, t->site, ALERT_AGGREGATE);
	bool fresh;

	if (!g) {
		struct alert gt;

		memset(&gt, 0, sizeof(gt));
		gt.kind = t->kind;
		gt.severity = t->severity;
		gt.temp_dc = TEMP_NONE;
		snprintf(gt.site, sizeof(gt.site), "%s", t->site);
		snprintf(gt.subject, sizeof(gt.subject), "%s", ALERT_AGGREGATE);
		snprintf(gt.event_key, sizeof(gt.event_key), "%s", t->event_key);
		g = (struct aggregate *)new_alert(r, &gt, sizeof(*g), at);
		if (!g)
			return -ENOMEM;
		g->last_mono = at->mono_us;
		fold_subject(g, t->subject);
		return emit(out, &g->a, "raised", at);
	}
	fresh = fold_subject(g, t->subject);
	if (at->mono_us > g->last_mono)
		g->last_mono = at->mono_us;
	if (!fresh && alert_state_kind(t->kind)->timer)
		return 0;
	if (g->a.count < INT32_MAX)
		g->a.count++;
	g->a.updated_us = at->wall_us;
	if (t->severity > g->a.severity)
		g->a.severity = t->severity;
	if (at->mono_us - g->a.published_mono_us >= r->cfg.repeat_interval_us)
		return emit(out, &g->a, "updated", at);
	return 0;
}

/* Raises the alert described by `t` (kind, site, subject, event_key and
 * details), or counts one more trigger of the open one; repeats are
 * published at most once per repeat_interval (rules_tick catches up). A
 * new subject of a site and kind with max_open_alerts open folds.
 * at->wall_us is the time the alert shows and that joins its id. */
static int
trigger(struct rules *r, struct rules_output *out, const struct alert *t,
	const struct rules_clock *at)
{
	struct alert *a = find(r, t->kind, t->site, t->subject);

	if (a) {
		/* alerts.count is an integer column: it stops at its maximum. */
		if (a->count < INT32_MAX)
			a->count++;
		a->updated_us = at->wall_us;
		if (t->severity > a->severity)
			a->severity = t->severity;
		if (t->temp_dc != TEMP_NONE)
			a->temp_dc = t->temp_dc;
		if (at->mono_us - a->published_mono_us >= r->cfg.repeat_interval_us)
			return emit(out, a, "updated", at);
		return 0;
	}
	if (r->cfg.max_open_alerts > 0 && open_count(r, t->site, t->kind) >= r->cfg.max_open_alerts)
		return fold(r, out, t, at);
	a = new_alert(r, t, sizeof(*a), at);
	if (!a)
		return -ENOMEM;
	return emit(out, a, "raised", at);
}

static int
close_alert(struct rules *r, struct rules_output *out, struct alert *a, const char *reason,
	    const char *by, const struct rules_clock *at)
{
	int err;

	unlink_alert(r, a); /* counted out in the state it was open in */
	a->state = ALERT_RESOLVED;
	a->resolved_us = a->updated_us = at->wall_us;
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
	snprintf(a->by, sizeof(a->by), "%s", by ? by : "");
	err = emit(out, a, "resolved", at);
	free(a);
	return err;
}

static int
resolve(struct rules *r, struct rules_output *out, enum alert_kind kind, const char *site,
	const char *subject, const char *reason, const struct rules_clock *at)
{
	struct alert *a = find(r, kind, site, subject);

	return a ? close_alert(r, out, a, reason, NULL, at) : 0;
}

/* The template of an alert of `kind`, with its kind's usual severity
 * (alert_state.h; a rule may raise it). */
static void
tmpl_init(struct alert *t, enum alert_kind kind, const char *site, const char *subject,
	  const char *event_key)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->severity = alert_state_kind(kind)->severity;
	t->temp_dc = TEMP_NONE;
	snprintf(t->site, sizeof(t->site), "%s", site);
	snprintf(t->subject, sizeof(t->subject), "%s", subject);
	snprintf(t->event_key, sizeof(t->event_key), "%s", event_key);
}

/* The template of an alert that event `ev` raises: its site, its key and
 * the hash of its content (which row is its own, if the key was reused). */
static void
tmpl_event(struct alert *t, enum alert_kind kind, const struct event *ev, const char *subject)
{
	tmpl_init(t, kind, ev->site, subject, ev->key);
	memcpy(t->event_hash, ev->content_hash, sizeof(t->event_hash));
}

/* ---- event rules ---- */

/* The clock of what event `ev`, processed at `t`, raises or resolves: it
 * shows the event's rule time; it is published at t. */
static struct rules_clock
event_at(const struct event *ev, const struct rules_clock *t)
{
	return (struct rules_clock){ .wall_us = ev->rule_us, .mono_us = t->mono_us };
}

static int
site_has_cards(const struct registry_snapshot *reg, const char *site)
{
	return registry_site_has_cards(reg, site);
}

static int
under_isolation(const struct registry_snapshot *reg, const char *site, const char *hh,
		int64_t now_us)
{
	size_t n;
	const struct reg_isolation *o = registry_isolations(reg, site, hh, &n);

	for (size_t i = 0; i < n; i++)
		if (o[i].starts_s * 1000000 <= now_us && now_us < o[i].ends_s * 1000000)
			return 1;
	return 0;
}

/* The outward passes of a household (created empty); NULL: no memory. */
static struct ring *
exit_ring(struct rules *r, const char *site, const char *household)
{
	char key[3 * NORM_KEY_MAX];

	key2(key, sizeof(key), site, household);
	return map_get_or_make(&r->exits, key, sizeof(struct ring));
}

/* ---- fever: the readings of a subject, whatever their order ---- */

/* The readings of one subject kept so that a fever reading arriving after
 * its normal re-check (brokers and bridges reorder, a bridge replays a
 * backlog) has the alerts it would have had in time order. At most
 * READINGS of them, the latest by rule time (16 bytes each). */
#define READINGS 16
/* Subjects whose readings are kept (some 350 bytes each: 7 MB). Past it a
 * new subject's readings are judged in arrival order alone. */
#define RULES_READINGS_MAX 20000
/* A subject's readings are forgotten this long (wall clock) after its
 * latest reading's rule time, plus recheck_window. */
#define READINGS_KEEP_US (24 * 3600 * INT64_C(1000000))

struct reading {
	int64_t at; /* rule time (wall, us) */
	bool fever;
	bool done; /* a normal reading whose resolve is published */
};

struct readings {
	int n;
	struct reading r[READINGS]; /* by rule time; a fever first at a tie */
};

/* A fever episode in time order: from the fever `from` that raised it to
 * the normal reading `to` that resolved it (0 while open). */
struct episode {
	int64_t from, to;
};

/* The episodes of `rs` in time order, as fever_rule would make them one
 * reading after another: a fever raises one when none is open; a normal
 * reading within recheck_window of its raise resolves it. Returns how
 * many (at most READINGS) in ret; the last one may be open. */
static int
episodes(const struct rules *r, const struct readings *rs, struct episode *ret)
{
	int n = 0;
	bool open = false;

	for (int i = 0; i < rs->n; i++) {
		const struct reading *x = &rs->r[i];

		if (x->fever && !open) {
			ret[n++] = (struct episode){ .from = x->at, .to = 0 };
			open = true;
		} else if (!x->fever && open &&
			   x->at - ret[n - 1].from <= r->cfg.recheck_window_us) {
			ret[n - 1].to = x->at;
			open = false;
		}
	}
	return n;
}

static bool
reading_before(const struct reading *a, const struct reading *b)
{
	return a->at < b->at || (a->at == b->at && a->fever && !b->fever);
}

/* Adds `x` to `rs` in its place; the oldest goes when it is full (before
 * the caller judges anything). Returns false for a reading already kept
 * (a redelivery changes nothing). */
static bool
readings_add(struct readings *rs, const struct reading *x)
{
	int i;

	for (i = 0; i < rs->n; i++)
		if (rs->r[i].at == x->at && rs->r[i].fever == x->fever)
			return false;
	if (rs->n == READINGS) {
		memmove(&rs->r[0], &rs->r[1], (READINGS - 1) * sizeof(rs->r[0]));
		rs->n--;
	}
	for (i = rs->n; i > 0 && reading_before(x, &rs->r[i - 1]); i--)
		rs->r[i] = rs->r[i - 1];
	rs->r[i] = *x;
	rs->n++;
	return true;
}

/* The readings of site|subject, made on first use; NULL when they are not
 * kept (RULES_READINGS_MAX subjects kept) or out of memory (*err). */
static struct readings *
readings_of(struct rules *r, const char *site, const char *subject, int *err)
{
	char key[3 * NORM_KEY_MAX];
	struct readings *rs;

	*err = 0;
	key2(key, sizeof(key), site, subject);
	if (r->readings.len >= RULES_READINGS_MAX && !map_get(&r->readings, key))
		return NULL;
	if (!(rs = map_get_or_make(&r->readings, key, sizeof(*rs))))
		*err = -ENOMEM;
	return rs;
}

/* Whether a normal reading of episode `i` (after its start, before the
 * next one's) had its resolve published but ends no episode now; it is
 * handed over to the episode's own re-check (its done flag cleared). */
static bool
orphan_done(struct readings *rs, const struct episode *ep, int n, int i)
{
	for (int j = 0; j < rs->n; j++) {
		struct reading *x = &rs->r[j];
		bool ends = false;

		if (x->fever || !x->done || x->at < ep[i].from ||
		    (i + 1 < n && x->at >= ep[i + 1].from))
			continue;
		for (int k = 0; k < n && !ends; k++)
			ends = ep[k].to == x->at;
		if (!ends) {
			x->done = false;
			return true;
		}
	}
	return false;
}

/* An alert of `t` raised at `from` and resolved at `to` ("rechecked"), its
 * own while the subject has another alert open: never linked. */
static int
raise_resolved(struct rules *r, struct rules_output *out, const struct alert *t, int64_t from,
	       int64_t to, int64_t mono)
{
	const struct rules_clock at = { .wall_us = from, .mono_us = mono };
	const struct rules_clock end = { .wall_us = to, .mono_us = mono };
	struct alert a;
	int err;

	if (!find(r, t->kind, t->site, t->subject)) {
		if ((err = trigger(r, out, t, &at)) < 0)
			return err;
		return resolve(r, out, t->kind, t->site, t->subject, "rechecked", &end);
	}
	a = *t;
	a.state = ALERT_RAISED;
	a.count = 1;
	a.raised_us = a.updated_us = from;
	a.resolved_us = 0;
	a.by[0] = '\0';
	alert_id_of(&a, from);
	if ((err = emit(out, &a, "raised", &at)) < 0)
		return err;
	a.state = ALERT_RESOLVED;
	a.resolved_us = a.updated_us = to;
	snprintf(a.reason, sizeof(a.reason), "rechecked");
	return emit(out, &a, "resolved", &end);
}

/* fever from a gate or a check; a normal reading within recheck_window
 * of the raise resolves the subject's fever as rechecked. The subject's
 * readings are kept (struct readings) and the alerts follow their
 * episodes in time order whatever order they arrive in: a fever dated
 * before a normal reading that arrived first is raised and resolved at
 * once; a fever dated before the open alert's raise moves its episode's
 * start (its recheck window) back; a normal reading dated within an open
 * episode's window resolves it, and a fever after it raises again. Past
 * READINGS per subject the oldest is forgotten, past RULES_READINGS_MAX
 * subjects a new one is judged in arrival order. */
static int
fever_rule(struct rules *r, const struct event *ev, const struct rules_clock *at,
	   const char *subject, const char *hh, struct rules_output *out)
{
	const struct reading x = { .at = ev->rule_us, .fever = ev->temp_dc >= r->cfg.fever_dc };
	struct episode before[READINGS], after[READINGS];
	struct readings *rs = NULL;
	struct alert t, *a;
	int nb, na, mine = -1, err = 0;

	if (ev->temp_dc == TEMP_NONE || (ev->flags & FLAG_IMPLAUSIBLE))
		return 0;
	tmpl_event(&t, KIND_FEVER, ev, subject);
	if (ev->temp_dc >= r->cfg.critical_dc)
		t.severity = SEVERITY_CRITICAL;
	/* what a normal reading raises (a fever dated before it) shows no
	 * temperature: the fever's own is not kept */
	t.temp_dc = x.fever ? ev->temp_dc : TEMP_NONE;
	snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
	snprintf(t.card, sizeof(t.card), "%s", ev->card);
	snprintf(t.household, sizeof(t.household), "%s", hh);
	/* A reading naming nobody has a subject of its own: nothing to keep. */
	if (strncmp(subject, "gate:", 5) != 0 && !(rs = readings_of(r, ev->site, subject, &err)) &&
	    err < 0)
		return err;
	a = find(r, KIND_FEVER, ev->site, subject);
	/* An open alert the readings do not show (restored at start, or its
	 * readings forgotten): its raise is a fever of the subject. */
	if (rs && a && ((nb = episodes(r, rs, before)) == 0 || before[nb - 1].to != 0))
		(void)readings_add(rs, &(struct reading){ .at = a->raised_us, .fever = true });
	/* A reading older than all kept is judged in arrival order. */
	if (rs && rs->n == READINGS && reading_before(&x, &rs->r[0]))
		rs = NULL;
	if (!rs) {
		if (x.fever)
			return trigger(r, out, &t, at);
		if (a && ev->rule_us - a->raised_us <= r->cfg.recheck_window_us &&
		    ev->rule_us >= a->raised_us)
			return close_alert(r, out, a, "rechecked", NULL, at);
		return 0;
	}
	for (int i = 0; i < rs->n; i++)
		if (rs->r[i].at == x.at && rs->r[i].fever == x.fever) /* no new episode */
			return x.fever && a ? trigger(r, out, &t, at) : 0;
	if (rs->n == READINGS) {
		memmove(&rs->r[0], &rs->r[1], (READINGS - 1) * sizeof(rs->r[0]));
		rs->n--;
	}
	nb = episodes(r, rs, before);
	(void)readings_add(rs, &x);
	na = episodes(r, rs, after);
	/* The open episode before is the open alert's (or one an operator
	 * resolved): `mine` is where it is now. */
	if (nb > 0 && before[nb - 1].to == 0)
		for (int i = 0; i < na && mine < 0; i++)
			if (after[i].from <= before[nb - 1].from &&
			    (after[i].to == 0 || before[nb - 1].from <= after[i].to))
				mine = i;
	/* Each episode resolved now whose re-check resolved nothing yet: the
	 * open alert's is resolved (a recheck dated within its window came
	 * late, a fever dated earlier came late), any other is raised and
	 * resolved at once. A resolve already published stays. */
	for (int i = 0; i < na; i++) {
		struct reading *nr = NULL;

		if (after[i].to == 0)
			continue;
		for (int j = 0; j < rs->n && !nr; j++)
			if (!rs->r[j].fever && rs->r[j].at == after[i].to)
				nr = &rs->r[j];
		if (nr->done && i != mine)
			continue;
		nr->done = true;
		/* published already by a re-check that resolves nothing now
		 * (one dated later, that came first): the resolve stays */
		if (i != mine && orphan_done(rs, after, na, i))
			continue;
		if (i == mine) {
			const struct rules_clock end = { .wall_us = after[i].to,
							 .mono_us = at->mono_us };

			if (a && (err = close_alert(r, out, a, "rechecked", NULL, &end)) < 0)
				return err;
			a = NULL;
		} else if ((err = raise_resolved(r, out, &t, after[i].from, after[i].to,
						 at->mono_us)) < 0)
			return err;
	}
	if (na > 0 && after[na - 1].to == 0) {
		const struct rules_clock from = { .wall_us = after[na - 1].from,
						  .mono_us = at->mono_us };
		uint32_t nfev = 0;

		for (int i = 0; i < rs->n; i++)
			nfev += rs->r[i].fever && rs->r[i].at >= from.wall_us;
		/* the open episode goes on (maybe from earlier now, with more
		 * fevers); if an operator resolved its alert, a fever raises a
		 * new one, but not one dated before that alert's */
		if (a || mine == na - 1) {
			if (!x.fever || x.at < from.wall_us || (!a && x.at < before[nb - 1].from))
				return 0;
			if (a && a->count < nfev - 1)
				a->count = nfev - 1;
			return trigger(r, out, &t, at);
		}
		if (r->cfg.max_open_alerts > 0 &&
		    open_count(r, t.site, t.kind) >= r->cfg.max_open_alerts)
			return trigger(r, out, &t, &from); /* folds */
		if (!(a = new_alert(r, &t, sizeof(*a), &from)))
			return -ENOMEM;
		a->count = nfev; /* its fevers so far */
		return emit(out, a, "raised", &from);
	}
	return 0;
}

/* The seal record of a sealed gate, made on first use; NULL on ENOMEM. */
static struct seal *
seal_of(struct rules *r, const char *site, const char *gate)
{
	char key[3 * NORM_KEY_MAX];

	key2(key, sizeof(key), site, gate);
	return map_get_or_make(&r->seals, key, sizeof(struct seal));
}

/* A breach of the sealed gate `t` describes at `at` (its rule time): raised,
 * unless a `closed` dated at or after it came first: then raised and
 * resolved at once (the gate was re-sealed since), or nothing when an
 * alert of a later breach is open. 0 or -ENOMEM. */
static int
seal_breach(struct rules *r, struct rules_output *out, const struct alert *t, const char *gate,
	    const struct rules_clock *at)
{
	struct seal *s = seal_of(r, t->site, gate);
	struct rules_clock closed;
	int err;

	if (!s)
		return -ENOMEM;
	if (at->wall_us > s->breach_us)
		s->breach_us = at->wall_us;
	if (at->wall_us > s->closed_us || s->closed_us == 0)
		return trigger(r, out, t, at);
	if (find(r, t->kind, t->site, t->subject))
		return 0;
	if ((err = trigger(r, out, t, at)) < 0)
		return err;
	closed = (struct rules_clock){ .wall_us = s->closed_us, .mono_us = at->mono_us };
	return resolve(r, out, t->kind, t->site, t->subject, "re-sealed", &closed);
}

static int
gate_rules(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	   const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	const struct reg_gate *g = registry_gate(reg, ev->site, ev->gate);
	struct reg_card card;
	const struct reg_card *c = ev->card[0] ? registry_card(reg, ev->site, ev->card, &card) :
						 NULL;
	const char *hh = c ? c->household : "";
	char subject[ALERT_SUBJECT_MAX];
	struct alert t;
	int err;

	if (g && g->sealed) {
		snprintf(subject, sizeof(subject), "gate:%s", ev->gate);
		tmpl_event(&t, KIND_SEALED_GATE, ev, subject);
		snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
		snprintf(t.card, sizeof(t.card), "%s", ev->card);
		snprintf(t.household, sizeof(t.household), "%s", hh);
		if ((err = seal_breach(r, out, &t, ev->gate, &at)) < 0)
			return err;
	}
	if (ev->card[0] && (!c || c->revoked) && site_has_cards(reg, ev->site)) {
		snprintf(subject, sizeof(subject), "card:%s", ev->card);
		tmpl_event(&t, KIND_UNKNOWN_CARD, ev, subject);
		snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
		snprintf(t.card, sizeof(t.card), "%s", ev->card);
		snprintf(t.reason, sizeof(t.reason), "%s", c ? "revoked" : "unregistered");
		if ((err = trigger(r, out, &t, &at)) < 0)
			return err;
	}
	if (c && !c->revoked && ev->direction == DIR_OUT) {
		if (under_isolation(reg, ev->site, hh, ev->rule_us)) {
			snprintf(subject, sizeof(subject), "household:%s", hh);
			tmpl_event(&t, KIND_ISOLATION_BREACH, ev, subject);
			snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
			snprintf(t.card, sizeof(t.card), "%s", ev->card);
			snprintf(t.household, sizeof(t.household), "%s", hh);
			if ((err = trigger(r, out, &t, &at)) < 0)
				return err;
		}
		/* An exception card (extra: a carer's) does not count. */
		if (r->cfg.exit_quota > 0 && !c->extra) {
			struct ring *ring = exit_ring(r, ev->site, hh);
			int64_t m = mono_of(tnow, ev->rule_us);
			int n = 0;

			if (!ring)
				return -ENOMEM;
			ring->t[ring->n++ % RING] = m;
			for (int i = 0; i < RING && i < ring->n; i++)
				n += m - ring->t[i] < r->cfg.exit_window_us;
			if (n > r->cfg.exit_quota) {
				snprintf(subject, sizeof(subject), "household:%s", hh);
				tmpl_event(&t, KIND_EXIT_QUOTA, ev, subject);
				snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
				snprintf(t.card, sizeof(t.card), "%s", ev->card);
				snprintf(t.household, sizeof(t.household), "%s", hh);
				if ((err = trigger(r, out, &t, &at)) < 0)
					return err;
			}
		}
	}
	if (ev->person[0])
		snprintf(subject, sizeof(subject), "person:%s", ev->person);
	else if (ev->card[0])
		snprintf(subject, sizeof(subject), "card:%s", ev->card);
	else {
		/* An anonymous reading is its own subject: its key and what it
		 * says (a device that reused the record id for another
		 * reading makes another subject, a redelivery the same). */
		char id[33], kc[NORM_KEY_MAX + 2 * NORM_HASH_LEN + 2];
		size_t n = (size_t)snprintf(kc, sizeof(kc), "%s#", ev->key);

		for (size_t i = 0; i < NORM_HASH_LEN && n < sizeof(kc); i++)
			n += (size_t)snprintf(kc + n, sizeof(kc) - n, "%02x", ev->content_hash[i]);
		rules_alert_id(ev->site, "", ev->gate, kc, id);
		snprintf(subject, sizeof(subject), "gate:%s:%.12s", ev->gate, id);
	}
	return fever_rule(r, ev, &at, subject, hh, out);
}

/* A message from the gate: seen when it is processed (tnow). */
static int
gate_seen(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	  const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX];
	int err;

	/* Only registered gates are timed (tick_gates): no other is kept. */
	key2(key, sizeof(key), ev->site, ev->gate);
	if (registry_gate(reg, ev->site, ev->gate) &&
	    (err = set_seen(&r->gates, key, tnow->mono_us)) < 0)
		return err;
	snprintf(subject, sizeof(subject), "gate:%s", ev->gate);
	return resolve(r, out, KIND_GATE_SILENT, ev->site, subject, "message received", &at);
}

static int
status_rules(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	     const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	const struct reg_gate *g = registry_gate(reg, ev->site, ev->gate);
	char subject[ALERT_SUBJECT_MAX];
	struct alert t;

	if (!g || !g->sealed)
		return 0;
	snprintf(subject, sizeof(subject), "gate:%s", ev->gate);
	if (ev->state == STATE_CLOSED) {
		struct seal *s = seal_of(r, ev->site, ev->gate);

		if (!s)
			return -ENOMEM;
		if (at.wall_us > s->closed_us)
			s->closed_us = at.wall_us;
		if (at.wall_us < s->breach_us)
			return 0; /* a breach dated later stands */
		return resolve(r, out, KIND_SEALED_GATE, ev->site, subject, "re-sealed", &at);
	}
	if (ev->state != STATE_OPEN && ev->state != STATE_FORCED)
		return 0;
	tmpl_event(&t, KIND_SEALED_GATE, ev, subject);
	snprintf(t.gate, sizeof(t.gate), "%s", ev->gate);
	snprintf(t.reason, sizeof(t.reason), "%s", normalize_state_name(ev->state));
	return seal_breach(r, out, &t, ev->gate, &at);
}

/* When the next check of order `o` is overdue (mono): check_interval +
 * check_grace after its last check, or after its start. */
static int64_t
check_deadline(const struct rules *r, const struct reg_isolation *o, const struct rules_clock *now)
{
	char key[3 * NORM_KEY_MAX];
	int64_t last, start, interval;

	key3(key, sizeof(key), o->site, o->household, o->person);
	last = seen(&r->checks, key);
	start = mono_of(now, o->starts_s * 1000000);
	if (last < start)
		last = start;
	interval = o->check_interval_s > 0 ? o->check_interval_s * 1000000 :
					     r->cfg.check_interval_us;
	return last + interval + r->cfg.check_grace_us;
}

/* A check of `person` ("": the household's order) resolves the open
 * isolation_overdue alert of `subject`, unless it is dated before the
 * alert's raise and leaves the order overdue all the same: in time order it
 * came before the raise, and the alert stands (a very old check arriving
 * late, a bridge's backlog). 0 or -ENOMEM. */
static int
checked_in(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	   const char *subject, const char *person, const struct rules_clock *tnow,
	   const struct rules_clock *at, struct rules_output *out)
{
	struct alert *a = find(r, KIND_ISOLATION_OVERDUE, ev->site, subject);
	size_t n;
	const struct reg_isolation *o;

	if (!a)
		return 0;
	if (at->wall_us < a->raised_us) {
		o = registry_isolations(reg, ev->site, ev->household, &n);
		for (size_t i = 0; i < n; i++)
			if (strcmp(o[i].person, person) == 0 &&
			    o[i].starts_s * 1000000 <= tnow->wall_us &&
			    tnow->wall_us < o[i].ends_s * 1000000 &&
			    tnow->mono_us > check_deadline(r, &o[i], tnow))
				return 0;
	}
	return close_alert(r, out, a, "checked in", NULL, at);
}

static int
check_rules(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	    const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	int64_t m = mono_of(tnow, ev->rule_us);
	char key[3 * NORM_KEY_MAX], psubj[ALERT_SUBJECT_MAX], hsubj[ALERT_SUBJECT_MAX];
	const char *subject;
	struct alert t;
	size_t norders = 0;
	int err;

	/* Checks are timed for households under an order (tick_isolation),
	 * started or not yet: no other is kept. */
	(void)registry_isolations(reg, ev->site, ev->household, &norders);
	key3(key, sizeof(key), ev->site, ev->household, ev->person);
	if (norders && (err = set_seen(&r->checks, key, m)) < 0)
		return err;
	key3(key, sizeof(key), ev->site, ev->household, "");
	if (norders && (err = set_seen(&r->checks, key, m)) < 0)
		return err;
	snprintf(hsubj, sizeof(hsubj), "household:%s", ev->household);
	snprintf(psubj, sizeof(psubj), "person:%s", ev->person);
	subject = ev->person[0] ? psubj : hsubj;
	if ((err = checked_in(r, reg, ev, subject, ev->person, tnow, &at, out)) < 0 ||
	    (err = checked_in(r, reg, ev, hsubj, "", tnow, &at, out)) < 0)
		return err;
	if (ev->text[0]) {
		tmpl_event(&t, KIND_ISOLATION_SYMPTOM, ev, subject);
		snprintf(t.household, sizeof(t.household), "%s", ev->household);
		snprintf(t.reason, sizeof(t.reason), "%.31s", ev->text);
		normalize_utf8_trim(t.reason);
		t.temp_dc = ev->temp_dc;
		if ((err = trigger(r, out, &t, &at)) < 0)
			return err;
	}
	return fever_rule(r, ev, &at, subject, ev->household, out);
}

/* ---- resolved calls: a map and a min-heap by resolve time ---- */

static void
heap_set(struct rules *r, size_t i, struct resolved *x)
{
	r->rheap[i] = x;
	x->pos = i;
}

static void
heap_up(struct rules *r, size_t i)
{
	struct resolved *x = r->rheap[i];

	while (i > 0 && r->rheap[(i - 1) / 2]->m > x->m) {
		heap_set(r, i, r->rheap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(r, i, x);
}

static void
heap_down(struct rules *r, size_t i)
{
	struct resolved *x = r->rheap[i];
	size_t n = r->resolved.len;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && r->rheap[c + 1]->m < r->rheap[c]->m)
			c++;
		if (r->rheap[c]->m >= x->m)
			break;
		heap_set(r, i, r->rheap[c]);
		i = c;
	}
	heap_set(r, i, x);
}

/* Remembers that the call `key` was resolved at `m` (mono) and stops
 * following it; at RULES_RESOLVED_MAX the call resolved earliest is
 * forgotten (the top of the heap: O(log n), not a scan of all 10,000), or
 * this one is not remembered when it is older than all kept. 0, or
 * -ENOMEM. */
static int
remember_resolved(struct rules *r, const char *key, int64_t m)
{
	struct resolved *x;
	size_t len = strlen(key) + 1;

	free(map_remove(&r->calls, key));
	if ((x = map_get(&r->resolved, key))) {
		if (m > x->m) {
			x->m = m;
			heap_down(r, x->pos);
		}
		return 0;
	}
	if (!r->rheap && !(r->rheap = malloc(RULES_RESOLVED_MAX * sizeof(*r->rheap))))
		return -ENOMEM;
	if (r->resolved.len >= RULES_RESOLVED_MAX) {
		struct resolved *oldest = r->rheap[0];

		if (oldest->m > m)
			return 0; /* older than all kept: not worth one */
		map_remove(&r->resolved, oldest->key);
		heap_set(r, 0, r->rheap[r->resolved.len]);
		heap_down(r, 0);
		free(oldest);
	}
	if (!(x = malloc(sizeof(*x) + len)))
		return -ENOMEM;
	x->m = m;
	memcpy(x->key, key, len);
	if (map_put(&r->resolved, key, x, NULL) < 0) {
		free(x);
		return -ENOMEM;
	}
	heap_set(r, r->resolved.len - 1, x);
	heap_up(r, r->resolved.len - 1);
	return 0;
}

static int
hotline_rules(struct rules *r, const struct event *ev, const struct rules_clock *tnow,
	      struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	int64_t m = mono_of(tnow, ev->rule_us);
	char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX];
	struct call *c;

	key2(key, sizeof(key), ev->site, ev->call_id);
	snprintf(subject, sizeof(subject), "call:%s", ev->call_id);
	if (ev->call == CALL_RESOLVE) {
		int err;

		if ((err = remember_resolved(r, key, m)) < 0)
			return err;
		return resolve(r, out, KIND_HOTLINE_UNRESOLVED, ev->site, subject, "call resolved",
			       &at);
	}
	if (map_get(&r->resolved, key))
		return 0; /* a late step of a resolved call */
	c = map_get(&r->calls, key);
	if (!c && ev->urgent == 1 && r->calls.len < RULES_CALLS_MAX) {
		c = calloc(1, sizeof(*c));
		if (!c || map_put(&r->calls, key, c, NULL) < 0) {
			free(c);
			return -ENOMEM;
		}
		c->opened_mono = m;
		c->opened = ev->call == CALL_OPEN;
	}
	if (c) {
		int med = strcmp(ev->category, "medical") == 0;

		/* ties: medical, and the greater household, win */
		if (ev->category[0] && (m > c->medical_mono || (m == c->medical_mono && med))) {
			c->medical = med;
			c->medical_mono = m;
		}
		if (ev->household[0] &&
		    (m > c->household_mono ||
		     (m == c->household_mono && strcmp(ev->household, c->household) > 0))) {
			snprintf(c->household, sizeof(c->household), "%s", ev->household);
			c->household_mono = m;
		}
		if (ev->call == CALL_OPEN && !c->opened) {
			c->opened_mono = m;
			c->opened = 1;
		} else if ((ev->call == CALL_OPEN || !c->opened) && m < c->opened_mono)
			c->opened_mono = m;
	}
	return 0;
}

/* An operator's ack or resolve: at the processing time `t`. */
static int
ack_rules(struct rules *r, const struct event *ev, const struct rules_clock *t,
	  struct rules_output *out)
{
	struct alert *a = map_get(&r->by_id, ev->alert_id);

	if (!a || strcmp(a->site, ev->site) != 0) {
		snprintf(out->reject_site, sizeof(out->reject_site), "%s", ev->site);
		snprintf(out->reject_reason, sizeof(out->reject_reason),
			 "no open alert %.40s to %s", ev->alert_id,
			 ev->ack == ACK_RESOLVE ? "resolve" : "acknowledge");
		return 0;
	}
	if (ev->ack == ACK_RESOLVE)
		return close_alert(r, out, a, "operator", ev->by, t);
	if (a->state == ALERT_ACKED)
		return 0;
	count_acked(r, a);
	a->state = ALERT_ACKED;
	a->updated_us = t->wall_us;
	snprintf(a->by, sizeof(a->by), "%s", ev->by);
	return emit(out, a, "acked", t);
}

int
rules_event(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	    const struct rules_clock *now, struct rules_output *out)
{
	const struct rules_clock t = clock_in(now), at = event_at(ev, &t);
	char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX];
	int err;

	scope_pass(r);
	if (!in_scope(r, ev->site))
		return 0; /* another instance's site (docs/scaling.md) */
	switch (ev->type) {
	case EVENT_GATE:
		if ((err = gate_seen(r, reg, ev, &t, out)) < 0)
			return err;
		return gate_rules(r, reg, ev, &t, out);
	case EVENT_STATUS:
		if ((err = gate_seen(r, reg, ev, &t, out)) < 0)
			return err;
		return status_rules(r, reg, ev, &t, out);
	case EVENT_DISINFECTION:
		key2(key, sizeof(key), ev->site, ev->zone);
		if (registry_zone(reg, ev->site, ev->zone) &&
		    (err = set_seen(&r->zones, key, mono_of(&t, ev->rule_us))) < 0)
			return err;
		snprintf(subject, sizeof(subject), "zone:%s", ev->zone);
		return resolve(r, out, KIND_DISINFECTION_OVERDUE, ev->site, subject, "disinfected",
			       &at);
	case EVENT_HOTLINE: return hotline_rules(r, ev, &t, out);
	case EVENT_CHECK: return check_rules(r, reg, ev, &t, out);
	case EVENT_ACK: return ack_rules(r, ev, &t, out);
	case EVENT_NEED:
	case EVENT_CALL:
	case EVENT_DROPOFF: return people_event(r, reg, ev, &t, out);
	}
	return 0;
}

/* ---- card_exception: the register's ordinary cards per household ---- */

/* What was raised for a household: the situation (a hash of its sorted
 * ordinary card ids), the id of the alert raised for it (the next one's
 * id is chained to it, so a situation that comes back after another, or
 * after a correction, has an id of its own), whether that situation is
 * over (corrected, or the check off), and the pass that last saw it. */
struct cardx {
	uint64_t hash;
	unsigned gen;
	bool over;
	char last_id[33];
};

/* A site's households raised for (household -> struct cardx), the
 * register's serial of the site when it was last walked with `limit`, and
 * the passes that last met it (`seen`) and walked it (`walked`). */
struct cardx_site {
	struct map hh;
	uint64_t serial;
	int64_t limit;
	unsigned seen, walked;
};

struct cardx_walk {
	struct rules *r;
	const struct rules_clock *at;
	struct rules_output *out;
};

static void
cardx_site_free(void *v)
{
	struct cardx_site *cs = v;

	map_finish(&cs->hh, free);
	free(cs);
}

/* A site's entry, made on first use; NULL on ENOMEM. */
static struct cardx_site *
cardx_site(struct rules *r, const char *site)
{
	struct cardx_site *cs = map_get(&r->cardx, site);

	if (cs)
		return cs;
	if (!(cs = calloc(1, sizeof(*cs))))
		return NULL;
	map_init(&cs->hh);
	if (map_put(&r->cardx, site, cs, NULL) < 0) {
		free(cs);
		return NULL;
	}
	return cs;
}

/* Whether to walk a site: not when its households and cards are the ones
 * judged last time, under the same limit (a reload of another site). */
static bool
cardx_walk_site(void *arg, const char *site, uint64_t serial)
{
	struct cardx_walk *w = arg;
	struct cardx_site *cs;

	if (!in_scope(w->r, site))
		return false; /* not ours: neither judged nor remembered */
	if (!(cs = cardx_site(w->r, site)))
		return true; /* no memory: cardx_household says so */
	cs->seen = w->r->cardx_gen;
	if (cs->serial == serial && cs->limit == w->r->cfg.cards_per_household)
		return false;
	cs->serial = serial;
	cs->limit = w->r->cfg.cards_per_household;
	cs->walked = w->r->cardx_gen;
	return true;
}

/* A household holding more ordinary cards than allowed (registry walk). */
static int
cardx_household(void *arg, const char *site, const char *hh, const char *const *cards, size_t n)
{
	struct cardx_walk *w = arg;
	struct rules *r = w->r;
	char subject[ALERT_SUBJECT_MAX], ek[32], chain[80];
	struct cardx_site *cs = map_get(&r->cardx, site);
	struct cardx *e;
	struct alert t, *a;
	XXH3_state_t st;
	uint64_t hash;
	size_t len;
	int err;

	if (!cs || !(e = map_get_or_make(&cs->hh, hh, sizeof(*e))))
		return -ENOMEM;
	XXH3_64bits_reset(&st);
	for (size_t i = 0; i < n; i++)
		XXH3_64bits_update(&st, cards[i], strlen(cards[i]) + 1);
	hash = XXH3_64bits_digest(&st);
	snprintf(ek, sizeof(ek), "cards:%016" PRIx64, hash);
	snprintf(subject, sizeof(subject), "household:%s", hh);
	a = find(r, KIND_CARD_EXCEPTION, site, subject);
	if ((a && strcmp(a->event_key, ek) == 0) || (!a && !e->over && e->hash == hash)) {
		/* raised once for this situation (and resolved, or open) */
		e->gen = r->cardx_gen;
		return 0;
	}
	if (a) {
		/* another situation: the next alert's id is chained to it */
		snprintf(e->last_id, sizeof(e->last_id), "%s", a->alert_id);
		if ((err = close_alert(r, w->out, a, "register changed", NULL, w->at)) < 0)
			return err;
	}
	tmpl_init(&t, KIND_CARD_EXCEPTION, site, subject, ek);
	snprintf(t.household, sizeof(t.household), "%s", hh);
	/* "<n> <allowed> <card> <card> ...": the text's (alerts.c), as many
	 * ids as fit */
	len = (size_t)snprintf(t.sample, sizeof(t.sample), "%zu %" PRId64, n,
			       r->cfg.cards_per_household);
	for (size_t i = 0; i < n && len + strlen(cards[i]) + 1 < sizeof(t.sample); i++)
		len += (size_t)snprintf(t.sample + len, sizeof(t.sample) - len, " %s", cards[i]);
	snprintf(chain, sizeof(chain), "%s@%s", ek, e->last_id);
	rules_alert_id(site, alert_state_kind_name(KIND_CARD_EXCEPTION), subject, chain,
		       t.alert_id);
	e->gen = r->cardx_gen;
	e->hash = hash;
	e->over = false;
	snprintf(e->last_id, sizeof(e->last_id), "%s", t.alert_id);
	return trigger(r, w->out, &t, w->at);
}

/* The households of site `cs` not met in this pass: the excess is gone
 * (or the check is off): resolved, over, and forgotten when the register
 * no longer has them. 0 or -ENOMEM. */
static int
cardx_sweep(struct rules *r, const struct registry_snapshot *reg, const char *site,
	    struct cardx_site *cs, const char *reason, const struct rules_clock *at,
	    struct rules_output *out)
{
	const char *hh;
	void *v;
	int err;

	for (size_t it = 0; map_next(&cs->hh, &it, &hh, &v);) {
		struct cardx *e = v;
		char subject[ALERT_SUBJECT_MAX];
		struct reg_household h;

		if (e->gen == r->cardx_gen)
			continue;
		snprintf(subject, sizeof(subject), "household:%s", hh);
		if ((err = resolve(r, out, KIND_CARD_EXCEPTION, site, subject, reason, at)) < 0)
			return err;
		e->over = true;
		/* Bounded by the register: a household gone is forgotten. */
		if (!registry_household(reg, site, hh, &h))
			free(map_remove(&cs->hh, hh));
	}
	return 0;
}

int
rules_register(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	       struct rules_output *out)
{
	const struct rules_clock at = clock_in(now);
	struct cardx_walk w = { .r = r, .at = &at, .out = out };
	bool off = r->cfg.cards_per_household <= 0;
	const char *site;
	void *v;
	int err;

	scope_pass(r);
	if (++r->cardx_gen == 0)
		r->cardx_gen = 1;
	if (!off &&
	    (err = registry_ordinary_cards(reg, (size_t)r->cfg.cards_per_household + 1,
					   cardx_walk_site, cardx_household, &w)) < 0)
		return err;
	/* Sites walked: their households not met. Sites the register no
	 * longer has (or all, when off): every household. A site skipped
	 * (the same serial) keeps its state. */
	for (size_t it = 0; map_next(&r->cardx, &it, &site, &v);) {
		struct cardx_site *cs = v;

		/* Not ours now (its lease uncertain): left as it is. */
		if (!in_scope(r, site))
			continue;
		if (!off && cs->seen == r->cardx_gen && cs->walked != r->cardx_gen)
			continue;
		if ((err = cardx_sweep(r, reg, site, cs, off ? "check off" : "register corrected",
				       &at, out)) < 0)
			return err;
		if (off || cs->seen != r->cardx_gen) {
			cs->serial = 0; /* walk it in full next time */
			if (cs->hh.len == 0)
				cardx_site_free(map_remove(&r->cardx, site));
		}
	}
	return 0;
}

/* A household's latest card_exception alert, restored at start: x->sub
 * is "<alert_id> <event_key> <over>". 0, 1 (not kept: not a registered
 * household, or not a card_exception's key) or -ENOMEM. */
static int
cardx_restore(struct rules *r, const struct registry_snapshot *reg, const struct alert_seen *x)
{
	char id[33], ek[NORM_ID_MAX + 1];
	struct reg_household h;
	struct cardx_site *cs;
	struct cardx *e;
	int over;

	if (sscanf(x->sub, "%32s %64s %d", id, ek, &over) != 3 || strncmp(ek, "cards:", 6) != 0 ||
	    !registry_household(reg, x->site, x->id, &h))
		return 1;
	if (!(cs = cardx_site(r, x->site)))
		return -ENOMEM;
	if (map_get(&cs->hh, x->id))
		return 0; /* a later pass of the restore: what runs now is newer */
	if (!(e = map_get_or_make(&cs->hh, x->id, sizeof(*e))))
		return -ENOMEM;
	e->hash = strtoull(ek + 6, NULL, 16);
	e->over = over != 0;
	snprintf(e->last_id, sizeof(e->last_id), "%s", id);
	cs->serial = 0; /* walked in full at the next pass */
	return 0;
}

/* ---- timer rules ---- */

int64_t
rules_daytime_elapsed(const struct tz *tz, int64_t from_s, int64_t to_s)
{
	int64_t total = 0, day;

	if (to_s <= from_s)
		return 0;
	day = (from_s + tz_offset_at(tz, from_s)) / 86400 - 1;
	for (int i = 0; i < 800; i++, day++) {
		int64_t lo = tz_local_to_utc(tz, day * 86400 + 6 * 3600);
		int64_t hi = tz_local_to_utc(tz, day * 86400 + 22 * 3600);

		if (lo >= to_s)
			break;
		if (hi > from_s)
			total += (hi < to_s ? hi : to_s) - (lo > from_s ? lo : from_s);
	}
	return total;
}

static int
tick_gates(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	   struct rules_output *out)
{
	for (size_t i = 0; i < reg->ngates; i++) {
		const struct reg_gate *g = &reg->gates[i];
		char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX], ek[64];
		int64_t last;
		struct alert t;
		int err;

		if (!g->active || g->sealed || !in_scope(r, g->site))
			continue;
		key2(key, sizeof(key), g->site, g->gate);
		last = seen(&r->gates, key);
		if (last < r->start_mono)
			last = r->start_mono;
		snprintf(subject, sizeof(subject), "gate:%s", g->gate);
		if (now->mono_us - last <= r->cfg.silence_timeout_us ||
		    find(r, KIND_GATE_SILENT, g->site, subject))
			continue;
		snprintf(ek, sizeof(ek), "silent:%" PRId64, wall_of(now, last));
		tmpl_init(&t, KIND_GATE_SILENT, g->site, subject, ek);
		snprintf(t.gate, sizeof(t.gate), "%s", g->gate);
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
	}
	return 0;
}

/* Whether an order is in force is a matter of the calendar (wall clock);
 * a check is due check_interval + check_grace after the last one, or after
 * the order's start, on the monotonic clock. */
static int
tick_isolation(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	       struct rules_output *out)
{
	for (size_t i = 0; i < reg->nisolations; i++) {
		const struct reg_isolation *o = &reg->isolations[i];
		char subject[ALERT_SUBJECT_MAX], ek[160];
		int64_t deadline;
		struct alert t;
		int err;

		if (o->starts_s * 1000000 > now->wall_us || now->wall_us >= o->ends_s * 1000000 ||
		    !in_scope(r, o->site))
			continue;
		deadline = check_deadline(r, o, now);
		if (o->person[0])
			snprintf(subject, sizeof(subject), "person:%s", o->person);
		else
			snprintf(subject, sizeof(subject), "household:%s", o->household);
		if (now->mono_us <= deadline || find(r, KIND_ISOLATION_OVERDUE, o->site, subject))
			continue;
		snprintf(ek, sizeof(ek), "overdue:%s:%" PRId64, o->household,
			 wall_of(now, deadline));
		tmpl_init(&t, KIND_ISOLATION_OVERDUE, o->site, subject, ek);
		snprintf(t.household, sizeof(t.household), "%s", o->household);
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
	}
	return 0;
}

/* The time since the last disinfection is monotonic; the hours of it that
 * count (06:00-22:00 local) are found by laying it back from the wall
 * clock's now. */
static int
tick_zones(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	   struct rules_output *out)
{
	for (size_t i = 0; i < reg->nzones; i++) {
		const struct reg_zone *z = &reg->zones[i];
		char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX], ek[64];
		int64_t last, interval;
		struct alert t;
		int err;

		if (!in_scope(r, z->site))
			continue;
		key2(key, sizeof(key), z->site, z->zone);
		last = seen(&r->zones, key);
		/* A zone never seen counts from the start; a known disinfection
		 * (restored from PostgreSQL, or a message with an older device
		 * time) counts from when it was: a restart does not put the
		 * interval back (G3). */
		if (last == 0)
			last = r->start_mono;
		interval = z->interval_s > 0 ? z->interval_s * 1000000 :
					       r->cfg.disinfection_interval_us;
		snprintf(subject, sizeof(subject), "zone:%s", z->zone);
		if (find(r, KIND_DISINFECTION_OVERDUE, z->site, subject) ||
		    rules_daytime_elapsed(registry_site_tz(reg, z->site),
					  wall_of(now, last) / 1000000, now->wall_us / 1000000) *
				    1000000 <=
			    interval)
			continue;
		snprintf(ek, sizeof(ek), "disinfection:%" PRId64, wall_of(now, last));
		tmpl_init(&t, KIND_DISINFECTION_OVERDUE, z->site, subject, ek);
		snprintf(t.zone, sizeof(t.zone), "%s", z->zone);
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
	}
	return 0;
}

static int
tick_calls(struct rules *r, const struct rules_clock *now, struct rules_output *out)
{
	const char *key;
	void *v;

	for (size_t it = 0; map_next(&r->calls, &it, &key, &v);) {
		const struct call *c = v;
		const char *sep = strchr(key, SEP[0]);
		char site[NORM_ID_MAX + 1], subject[ALERT_SUBJECT_MAX], ek[NORM_ID_MAX + 16];
		int64_t limit = c->medical ? r->cfg.hotline_medical_us : r->cfg.hotline_other_us;
		struct alert t;
		int err;

		if (!sep || now->mono_us - c->opened_mono <= limit)
			continue;
		snprintf(site, sizeof(site), "%.*s", (int)(sep - key), key);
		if (!in_scope(r, site))
			continue;
		snprintf(subject, sizeof(subject), "call:%s", sep + 1);
		if (find(r, KIND_HOTLINE_UNRESOLVED, site, subject))
			continue;
		snprintf(ek, sizeof(ek), "call:%s", sep + 1);
		tmpl_init(&t, KIND_HOTLINE_UNRESOLVED, site, subject, ek);
		if (c->medical)
			t.severity = SEVERITY_CRITICAL;
		snprintf(t.call_id, sizeof(t.call_id), "%s", sep + 1);
		snprintf(t.household, sizeof(t.household), "%s", c->household);
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
	}
	return 0;
}

/* exit_quota alerts end with their window; repeats catch up. */
static int
tick_alerts(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	    struct rules_output *out)
{
	const char *key;
	void *v;

	for (size_t it = 0; map_next(&r->alerts, &it, &key, &v);) {
		struct alert *a = v;
		int err;

		if (!alert_in_scope(r, a))
			continue;
		if (alert_state_is_aggregate(a)) {
			/* The flood is over: nothing folded for an hour. */
			if (now->mono_us - ((struct aggregate *)a)->last_mono >=
			    RULES_FOLD_QUIET_US) {
				if ((err = close_alert(r, out, a, "nothing folded for 1 h", NULL,
						       now)) < 0)
					return err;
				continue;
			}
		} else if (a->kind == KIND_ISOLATION_OVERDUE &&
			   !under_isolation(reg, a->site, a->household, now->wall_us)) {
			if ((err = close_alert(r, out, a, "order ended", NULL, now)) < 0)
				return err;
			continue;
		}
		if (a->kind == KIND_EXIT_QUOTA && !alert_state_is_aggregate(a)) {
			char k[3 * NORM_KEY_MAX];
			const struct ring *ring;
			int n = 0;

			key2(k, sizeof(k), a->site, a->household);
			ring = map_get(&r->exits, k);
			for (int i = 0; ring && i < RING && i < ring->n; i++)
				n += now->mono_us - ring->t[i] < r->cfg.exit_window_us;
			if (n <= r->cfg.exit_quota) {
				if ((err = close_alert(r, out, a, "window ended", NULL, now)) < 0)
					return err;
				continue;
			}
		}
		if (a->count > a->published_count &&
		    now->mono_us - a->published_mono_us >= r->cfg.repeat_interval_us &&
		    (err = emit(out, a, "updated", now)) < 0)
			return err;
	}
	return 0;
}

/* Forgets the readings of subjects with nothing for READINGS_KEEP_US +
 * recheck_window (by rule time against the wall clock), once a minute. */
static void
prune_readings(struct rules *r, const struct rules_clock *now)
{
	const char *key;
	void *v;

	if (now->mono_us - r->pruned_mono < 60 * INT64_C(1000000))
		return;
	r->pruned_mono = now->mono_us;
	for (size_t it = 0; map_next(&r->readings, &it, &key, &v);) {
		const struct readings *rs = v;

		if (rs->n == 0 ||
		    now->wall_us - rs->r[rs->n - 1].at >
			    READINGS_KEEP_US + r->cfg.recheck_window_us)
			free(map_remove(&r->readings, key));
	}
}

int
rules_tick(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	   struct rules_output *out)
{
	const struct rules_clock t = clock_in(now);
	int err;

	scope_pass(r);
	prune_readings(r, &t);

	if ((!r->intake_down && (err = tick_gates(r, reg, &t, out)) < 0) ||
	    (err = tick_isolation(r, reg, &t, out)) < 0 ||
	    (err = tick_zones(r, reg, &t, out)) < 0 || (err = tick_calls(r, &t, out)) < 0 ||
	    (err = tick_people(r, reg, &t, out)) < 0)
		return err;
	return tick_alerts(r, reg, &t, out);
}

/* An instance-level alert of `kind` (site _daemon, subject
 * instance:<instance>): raised while `trouble` is set, its reason `why`,
 * resolved with `resolved` when it clears. 0 or -ENOMEM. */
static int
instance_alert(struct rules *r, enum alert_kind kind, const char *instance, int trouble,
	       const char *why, const char *resolved, const struct rules_clock *now,
	       struct rules_output *out)
{
	const struct rules_clock at = clock_in(now);
	char subject[ALERT_SUBJECT_MAX], ek[64];
	struct alert t;

	snprintf(subject, sizeof(subject), "instance:%s", instance);
	if (!trouble)
		return resolve(r, out, kind, "_daemon", subject, resolved, &at);
	if (find(r, kind, "_daemon", subject))
		return 0;
	snprintf(ek, sizeof(ek), "%s:%" PRId64, alert_state_kind_name(kind), at.wall_us);
	tmpl_init(&t, kind, "_daemon", subject, ek);
	snprintf(t.reason, sizeof(t.reason), "%.31s", why);
	normalize_utf8_trim(t.reason);
	return trigger(r, out, &t, &at);
}

int
rules_backlog(struct rules *r, const char *instance, int trouble, const char *why,
	      const struct rules_clock *now, struct rules_output *out)
{
	return instance_alert(r, KIND_BACKLOG, instance, trouble, why, "recovered", now, out);
}

int
rules_client_id_conflict(struct rules *r, const char *instance, int trouble, const char *why,
			 const struct rules_clock *now, struct rules_output *out)
{
	return instance_alert(r, KIND_CLIENT_ID_CONFLICT, instance, trouble, why, "quiet", now,
			      out);
}

int
rules_restore_alert(struct rules *r, const struct alert *src, const struct rules_clock *now,
		    struct rules_output *out)
{
	const struct rules_clock t = clock_in(now);
	struct alert *a;
	int err;

	if (find(r, src->kind, src->site, src->subject))
		return 0;
	if (!alert_state_is_aggregate(src) && r->cfg.max_open_alerts > 0 &&
	    open_count(r, src->site, src->kind) >= r->cfg.max_open_alerts) {
		struct alert x = *src;

		if ((err = fold(r, out, src, &t)) < 0)
			return err;
		x.state = ALERT_RESOLVED;
		x.resolved_us = x.updated_us = t.wall_us;
		snprintf(x.reason, sizeof(x.reason), "folded");
		x.by[0] = '\0';
		return (err = emit(out, &x, "resolved", &t)) < 0 ? err : 1;
	}
	if (alert_state_is_aggregate(src)) {
		struct aggregate *g = calloc(1, sizeof(*g));

		if (!g)
			return -ENOMEM;
		g->base = src->distinct;
		g->last_mono = mono_of(&t, src->updated_us);
		a = &g->a;
	} else if (!(a = malloc(sizeof(*a))))
		return -ENOMEM;
	*a = *src;
	a->published_count = a->count;
	a->published_mono_us = mono_of(&t, src->updated_us);
	if ((err = link_alert(r, a)) < 0) {
		free(a);
		return err;
	}
	return 0;
}

int
rules_restore_seen(struct rules *r, const struct registry_snapshot *reg, const struct alert_seen *x,
		   const struct rules_clock *now)
{
	const struct rules_clock t = clock_in(now);
	int64_t m = mono_of(&t, x->at_us);
	const struct reg_gate *g;
	char key[3 * NORM_KEY_MAX];
	size_t norders = 0;

	switch (x->what) {
	case SEEN_GATE:
		if (!registry_gate(reg, x->site, x->id))
			return 1;
		key2(key, sizeof(key), x->site, x->id);
		return set_seen(&r->gates, key, m);
	case SEEN_ZONE:
		if (!registry_zone(reg, x->site, x->id))
			return 1;
		key2(key, sizeof(key), x->site, x->id);
		return set_seen(&r->zones, key, m);
	case SEEN_CHECK:
		(void)registry_isolations(reg, x->site, x->id, &norders);
		if (norders == 0)
			return 1;
		key3(key, sizeof(key), x->site, x->id, x->sub);
		return set_seen(&r->checks, key, m);
	case SEEN_CALL: {
		struct call *c;

		key2(key, sizeof(key), x->site, x->id);
		if (map_get(&r->calls, key) || map_get(&r->resolved, key) ||
		    r->calls.len >= RULES_CALLS_MAX)
			return 0;
		c = calloc(1, sizeof(*c));
		if (!c || map_put(&r->calls, key, c, NULL) < 0) {
			free(c);
			return -ENOMEM;
		}
		c->opened_mono = c->medical_mono = m;
		c->opened = 1;
		c->medical = strcmp(x->sub, "medical") == 0;
		return 0;
	}
	case SEEN_CALL_RESOLVED:
		key2(key, sizeof(key), x->site, x->id);
		return remember_resolved(r, key, m);
	case SEEN_SEAL_CLOSED:
	case SEEN_SEAL_BREACH: {
		struct seal *sl;
		int64_t *at;

		if (!(g = registry_gate(reg, x->site, x->id)) || !g->sealed)
			return 1;
		if (!(sl = seal_of(r, x->site, x->id)))
			return -ENOMEM;
		at = x->what == SEEN_SEAL_CLOSED ? &sl->closed_us : &sl->breach_us;
		if (x->at_us > *at)
			*at = x->at_us;
		return 0;
	}
	case SEEN_EXIT: {
		struct ring *ring = exit_ring(r, x->site, x->id);

		if (!ring)
			return -ENOMEM;
		ring->t[ring->n++ % RING] = m;
		return 0;
	}
	case SEEN_CARD_EXCEPTION: return cardx_restore(r, reg, x);
	case SEEN_NEED_OPEN:
	case SEEN_NEED_CATEGORY:
	case SEEN_NEED_DUE:
	case SEEN_NEED_ASSIGNED:
	case SEEN_NEED_DONE:
	case SEEN_WELFARE_REACHED:
	case SEEN_DROPOFF_PLACED:
	case SEEN_DROPOFF_COLLECTED: return people_restore_seen(r, reg, x, &t);
	case SEEN_COUNT: break;
	}
	return 1;
}

/* Sites and households of card_exception's memory. */
static size_t
cardx_entries(const struct rules *r)
{
	size_t n = r->cardx.len;
	const char *key;
	void *v;

	for (size_t it = 0; map_next(&r->cardx, &it, &key, &v);)
		n += ((const struct cardx_site *)v)->hh.len;
	return n;
}

size_t
rules_entries(const struct rules *r)
{
	return r->alerts.len + r->by_id.len + r->gates.len + r->checks.len + r->zones.len +
		r->calls.len + r->resolved.len + r->seals.len + r->exits.len + r->nopen.len +
		r->bystate.len + r->readings.len + cardx_entries(r) + r->needs.len +
		r->welfare.len + r->drops.len + r->missed.len;
}

bool
rules_open_next(const struct rules *r, size_t *iter, struct rules_open *ret)
{
	const char *key;
	void *v;
	const struct open_states *o;
	const char *sep;
	size_t len;

	if (!map_next(&r->bystate, iter, &key, &v))
		return false;
	o = v;
	sep = strchr(key, SEP[0]);
	len = sep ? (size_t)(sep - key) : strlen(key);
	if (len >= sizeof(ret->site))
		len = sizeof(ret->site) - 1;
	memcpy(ret->site, key, len);
	ret->site[len] = '\0';
	ret->kind = o->kind;
	ret->raised = o->n[0];
	ret->acked = o->n[1];
	return true;
}

void
rules_open_totals(const struct rules *r, uint64_t *ret_raised, uint64_t *ret_acked)
{
	*ret_raised = r->open_states[0];
	*ret_acked = r->open_states[1];
}

size_t
rules_open_alerts(struct rules *r, const struct alert **ret, size_t max)
{
	const char *key;
	void *v;
	size_t n = 0;

	for (size_t it = 0; n < max && map_next(&r->alerts, &it, &key, &v);)
		ret[n++] = v;
	return n;
}

/* ---- forgetting the sites of a shard lost (docs/scaling.md) ---- */

struct forget {
	bool (*keep)(void *ctx, const char *site);
	void *ctx;
	size_t dropped;
};

/* Whether the entry `key` (site|...) of a site not kept goes. */
static bool
forget_key(struct forget *f, const char *key)
{
	char site[NORM_ID_MAX + 1];
	const char *sep = strchr(key, SEP[0]);
	size_t len = sep ? (size_t)(sep - key) : strlen(key);

	if (len >= sizeof(site))
		len = sizeof(site) - 1;
	memcpy(site, key, len);
	site[len] = '\0';
	return !f->keep(f->ctx, site);
}

/* Drops from `m` the entries of sites not kept; their values with
 * free_value (NULL: values inline). */
static void
forget_map(struct forget *f, struct map *m, void (*free_value)(void *))
{
	const char *key;
	void *v;

	for (size_t it = 0; map_next(m, &it, &key, &v);) {
		if (!forget_key(f, key))
			continue;
		map_remove(m, key);
		if (free_value)
			free_value(v);
		f->dropped++;
	}
}

size_t
rules_forget_sites(struct rules *r, bool (*keep)(void *ctx, const char *site), void *ctx)
{
	struct forget f = { .keep = keep, .ctx = ctx };
	const char *key;
	void *v;
	size_t n = 0;

	if (!keep) {
		f.keep = r->scope;
		f.ctx = r->scope_ctx;
		if (!f.keep)
			return 0; /* every site is in scope */
	}
	scope_pass(r);
	/* Open alerts (and their ids, counts): nothing is published, the
	 * shard's new owner carries them on from PostgreSQL. */
	for (size_t it = 0; map_next(&r->alerts, &it, &key, &v);) {
		struct alert *a = v;

		if (alert_state_is_instance_kind(a->kind) || f.keep(f.ctx, a->site))
			continue;
		unlink_alert(r, a);
		free(a);
		f.dropped++;
	}
	forget_map(&f, &r->nopen, NULL);
	forget_map(&f, &r->gates, NULL);
	forget_map(&f, &r->checks, NULL);
	forget_map(&f, &r->zones, NULL);
	forget_map(&f, &r->calls, free);
	forget_map(&f, &r->seals, free);
	forget_map(&f, &r->exits, free);
	forget_map(&f, &r->readings, free);
	forget_map(&f, &r->cardx, cardx_site_free);
	forget_map(&f, &r->needs, free);
	forget_map(&f, &r->welfare, NULL);
	forget_map(&f, &r->drops, free);
	forget_map(&f, &r->missed, NULL);
	/* The resolved calls: out of the map, then the heap made again from
	 * what is left (O(n)). */
	forget_map(&f, &r->resolved, free);
	for (size_t it = 0; map_next(&r->resolved, &it, &key, &v);)
		heap_set(r, n++, v);
	for (size_t i = n / 2; i-- > 0;)
		heap_down(r, i);
	return f.dropped;
}

/* ---- the people work (issue 16): needs, welfare calls, drop-offs ----
 *
 *   needs    site|need_id -> struct need         need_overdue
 *   welfare  site|household -> latest reach (wall us, intptr)  call_missed
 *   drops    site|household -> struct drops      dropoff_uncollected
 *
 * Clocks, as above: a need's assign limit runs from its open's rule time
 * and a delivery's limit from its placement's, both put on the monotonic
 * clock when they come in; a need's due time is a wall time from outside,
 * put on the monotonic clock once, when it comes in (its distance from
 * the wall clock then). The welfare call's deadline is calendar: the
 * local day and its call_deadline in the site's zone, and a reach counts
 * for the local day of its rule time (wall clock).
 *
 * Order: a need's deliver or cancel is final (kept as `done`, and in the
 * table needs the same way): a step of it arriving later, an open among
 * them, neither follows nor raises it. A household's reach is the latest
 * by rule time, whatever order the calls come in. A collection collects
 * every delivery placed for the household up to its rule time: one placed
 * before a collection that came first is never timed.
 *
 * Bounds: needs at most RULES_NEEDS_MAX (followed and done); welfare and
 * drops only households under an isolation order in the register (started
 * or not yet), drops at most DROPS pending deliveries each. */

/* Needs followed or remembered done (some 250 bytes each: 5 MB). Past it
 * a new need is not followed (its deliver still resolves its alert): a
 * compound of 5,000 households opening four needs a day each. A done need
 * is forgotten NEED_DONE_KEEP_US after its deliver or cancel: a step of it
 * arriving later than that is taken for a new need. */
#define RULES_NEEDS_MAX 20000
#define NEED_DONE_KEEP_US (24 * 3600 * INT64_C(1000000))
/* Deliveries of one household waiting at the drop-off point that are
 * timed: the earliest DROPS by rule time (a later one past it is timed
 * once a collection makes room, from its own placement). */
#define DROPS 8

struct need {
	int64_t opened_mono;   /* the earliest open (mono); 0: none seen */
	int64_t due_mono;      /* delivered by then (mono); 0: no due */
	int64_t due_us;	       /* the same on the wall clock, for the text */
	int64_t due_at;	       /* rule time (wall) of the step that gave the due */
	int64_t done_mono;     /* delivered or cancelled (mono); 0: not */
	int64_t hh_at, cat_at; /* rule times of the steps that gave these */
	bool assigned;
	/* need_overdue raised for it: not again while it is not done, also
	 * when an operator resolved the alert (docs/alerts.md) */
	bool raised;
	char household[NORM_ID_MAX + 1];
	char category[NORM_ID_MAX + 1];
};

struct drop {
	int64_t at;   /* rule time (wall, us) */
	int64_t mono; /* the same on the monotonic clock */
};

struct drops {
	int64_t collected_us; /* the latest collection (rule time, wall) */
	int64_t raised_at;    /* the delivery (at) dropoff_uncollected was raised for */
	int n;
	struct drop p[DROPS]; /* uncollected, earliest first */
};

/* Wall time wall_us (maybe later than now) on the monotonic clock, by its
 * distance from the wall clock now. */
static int64_t
mono_ahead(const struct rules_clock *t, int64_t wall_us)
{
	int64_t d = wall_us - t->wall_us;

	if (d > MONO_BIAS / 2)
		d = MONO_BIAS / 2;
	if (d < -MONO_BIAS / 2)
		d = -MONO_BIAS / 2;
	return t->mono_us + d;
}

/* Local midnight (UTC seconds) of the day in zone tz that holds UTC second
 * s; *ret_day is that day (days since 1970-01-01, local). */
static int64_t
local_midnight(const struct tz *tz, int64_t s, int64_t *ret_day)
{
	int64_t naive = s + tz_offset_at(tz, s);
	int64_t day = naive >= 0 ? naive / 86400 : -((-naive + 86399) / 86400);

	*ret_day = day;
	return tz_local_to_utc(tz, day * 86400);
}

/* Wall time us as HH:MM local time in zone tz. */
static void
local_hhmm(const struct tz *tz, int64_t us, char *buf, size_t len)
{
	int64_t s = us / 1000000, local = s + tz_offset_at(tz, s);
	int64_t sod = (local % 86400 + 86400) % 86400;

	snprintf(buf, len, "%02d:%02d", (int)(sod / 3600), (int)(sod / 60 % 60));
}

/* "2 h", "90 min", "45 s": a limit for a sentence. */
static void
limit_text(int64_t us, char *buf, size_t len)
{
	int64_t s = us / 1000000;

	if (s >= 3600 && s % 3600 == 0)
		snprintf(buf, len, "%" PRId64 " h", s / 3600);
	else if (s >= 60 && s % 60 == 0)
		snprintf(buf, len, "%" PRId64 " min", s / 60);
	else
		snprintf(buf, len, "%" PRId64 " s", s);
}

/* The need site|need_id, made on first use; NULL when not followed
 * (RULES_NEEDS_MAX) or out of memory (*err). */
static struct need *
need_of(struct rules *r, const char *site, const char *need_id, int *err)
{
	char key[3 * NORM_KEY_MAX];
	struct need *n;

	*err = 0;
	key2(key, sizeof(key), site, need_id);
	if ((n = map_get(&r->needs, key)) || r->needs.len >= RULES_NEEDS_MAX)
		return n;
	if (!(n = map_get_or_make(&r->needs, key, sizeof(*n))))
		*err = -ENOMEM;
	return n;
}

/* A step of a need: an open starts its assign limit (the earliest open),
 * an assign stops it, a due (the latest step's that gives one) sets its
 * deadline; a deliver or cancel ends it and resolves its alert. */
static int
need_rules(struct rules *r, const struct event *ev, const struct rules_clock *tnow,
	   struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	int64_t m = mono_of(tnow, ev->rule_us);
	char subject[ALERT_SUBJECT_MAX];
	struct need *n;
	int err;

	snprintf(subject, sizeof(subject), "need:%s", ev->need_id);
	if (!(n = need_of(r, ev->site, ev->need_id, &err)) && err < 0)
		return err;
	if (ev->need == NEED_DELIVER || ev->need == NEED_CANCEL) {
		if (n && !n->done_mono)
			n->done_mono = m;
		return resolve(r, out, KIND_NEED_OVERDUE, ev->site, subject,
			       ev->need == NEED_DELIVER ? "delivered" : "cancelled", &at);
	}
	if (!n || n->done_mono)
		return 0; /* not followed, or a late step of a need done */
	if (ev->household[0] && ev->rule_us >= n->hh_at) {
		snprintf(n->household, sizeof(n->household), "%s", ev->household);
		n->hh_at = ev->rule_us;
	}
	if (ev->category[0] && ev->rule_us >= n->cat_at) {
		snprintf(n->category, sizeof(n->category), "%s", ev->category);
		n->cat_at = ev->rule_us;
	}
	if (ev->due_us && (n->due_mono == 0 || ev->rule_us >= n->due_at)) {
		n->due_us = ev->due_us;
		n->due_mono = mono_ahead(tnow, ev->due_us);
		n->due_at = ev->rule_us;
	}
	if (ev->need == NEED_OPEN && (n->opened_mono == 0 || m < n->opened_mono))
		n->opened_mono = m;
	if (ev->need == NEED_ASSIGN)
		n->assigned = true;
	return 0;
}

/* A welfare call: any outcome but no_answer reached the household (a
 * needs_help or counselling call was answered). The reach counts for the
 * local day of its rule time: it resolves the household's call_missed
 * alert of that day or of an earlier one, not a later day's. */
static int
welfare_rules(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	      const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX];
	struct alert *a;
	size_t norders = 0;
	int64_t day;
	int err;

	if (ev->outcome == OUTCOME_NO_ANSWER || ev->outcome == OUTCOME_NONE)
		return 0;
	(void)registry_isolations(reg, ev->site, ev->household, &norders);
	key2(key, sizeof(key), ev->site, ev->household);
	if (norders && (err = set_seen(&r->welfare, key, ev->rule_us)) < 0)
		return err;
	snprintf(subject, sizeof(subject), "household:%s", ev->household);
	if (!(a = find(r, KIND_CALL_MISSED, ev->site, subject)) ||
	    ev->rule_us <
		    local_midnight(registry_site_tz(reg, ev->site), a->raised_us / 1000000, &day) *
			    1000000)
		return 0;
	return close_alert(r, out, a, "reached", NULL, &at);
}

/* Whether a delivery dated `at` is past its limit at `now` (mono). */
static bool
drop_overdue(const struct rules *r, const struct drops *d, const struct rules_clock *now)
{
	return d->n > 0 && now->mono_us - d->p[0].mono > r->cfg.dropoff_limit_us;
}

/* A delivery placed at `at` (rule time; `mono` on the monotonic clock),
 * unless a collection dated at or after it is known. */
static void
drops_place(struct drops *d, int64_t at, int64_t mono)
{
	int i;

	if (at <= d->collected_us)
		return; /* collected already (the collection came first) */
	for (i = 0; i < d->n; i++)
		if (d->p[i].at == at)
			return; /* a redelivery, or one of the same time */
	if (d->n == DROPS) {
		if (at > d->p[DROPS - 1].at)
			return;
		d->n--;
	}
	for (i = d->n; i > 0 && at < d->p[i - 1].at; i--)
		d->p[i] = d->p[i - 1];
	d->p[i] = (struct drop){ .at = at, .mono = mono };
	d->n++;
}

/* A collection at `at` (rule time): everything placed up to then. */
static void
drops_collect(struct drops *d, int64_t at)
{
	int i;

	if (at > d->collected_us)
		d->collected_us = at;
	for (i = 0; i < d->n && d->p[i].at <= d->collected_us; i++)
		;
	memmove(&d->p[0], &d->p[i], (size_t)(d->n - i) * sizeof(d->p[0]));
	d->n -= i;
}

/* A delivery placed for, or collected by, a household under an order. */
static int
dropoff_rules(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	      const struct rules_clock *tnow, struct rules_output *out)
{
	const struct rules_clock at = event_at(ev, tnow);
	char key[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX];
	struct drops *d;
	size_t norders = 0;

	key2(key, sizeof(key), ev->site, ev->household);
	snprintf(subject, sizeof(subject), "household:%s", ev->household);
	if (ev->dropoff == DROPOFF_PLACED) {
		if (!under_isolation(reg, ev->site, ev->household, ev->rule_us))
			return 0;
		if (!(d = map_get_or_make(&r->drops, key, sizeof(*d))))
			return -ENOMEM;
		drops_place(d, ev->rule_us, mono_of(tnow, ev->rule_us));
		return 0;
	}
	if (ev->dropoff != DROPOFF_COLLECTED)
		return 0;
	(void)registry_isolations(reg, ev->site, ev->household, &norders);
	d = map_get(&r->drops, key);
	if (!d && norders && !(d = map_get_or_make(&r->drops, key, sizeof(*d))))
		return -ENOMEM;
	if (d) {
		drops_collect(d, ev->rule_us);
		/* A collection dated before the late delivery leaves it late. */
		if (drop_overdue(r, d, tnow))
			return 0;
	}
	return resolve(r, out, KIND_DROPOFF_UNCOLLECTED, ev->site, subject, "collected", &at);
}

static int
people_event(struct rules *r, const struct registry_snapshot *reg, const struct event *ev,
	     const struct rules_clock *t, struct rules_output *out)
{
	switch (ev->type) {
	case EVENT_NEED: return need_rules(r, ev, t, out);
	case EVENT_CALL: return welfare_rules(r, reg, ev, t, out);
	case EVENT_DROPOFF: return dropoff_rules(r, reg, ev, t, out);
	default: return 0;
	}
}

/* Splits a map key site|rest; false when it has no separator. */
static bool
split_key(const char *key, char *site, size_t len, const char **ret_rest)
{
	const char *sep = strchr(key, SEP[0]);

	if (!sep)
		return false;
	snprintf(site, len, "%.*s", (int)(sep - key), key);
	*ret_rest = sep + 1;
	return true;
}

/* need_overdue: past its due time (first), or open longer than
 * need_assign_limit with no assignment. Done needs are forgotten
 * NEED_DONE_KEEP_US after their end (once a minute). */
static int
tick_needs(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	   struct rules_output *out)
{
	bool prune = now->mono_us - r->people_pruned_mono >= 60 * INT64_C(1000000);
	const char *key;
	void *v;

	if (prune)
		r->people_pruned_mono = now->mono_us;
	for (size_t it = 0; map_next(&r->needs, &it, &key, &v);) {
		struct need *n = v;
		char site[NORM_ID_MAX + 1], subject[ALERT_SUBJECT_MAX], ek[NORM_ID_MAX + 8],
			what[40];
		const char *id;
		struct alert t;
		bool due;
		int err;

		if (n->done_mono) {
			if (prune && now->mono_us - n->done_mono > NEED_DONE_KEEP_US)
				free(map_remove(&r->needs, key));
			continue;
		}
		if (n->raised)
			continue;
		due = n->due_mono && now->mono_us > n->due_mono;
		if ((!due &&
		     !(n->opened_mono && !n->assigned &&
		       now->mono_us - n->opened_mono > r->cfg.need_assign_limit_us)) ||
		    !split_key(key, site, sizeof(site), &id) || !in_scope(r, site))
			continue;
		if (due) {
			snprintf(what, sizeof(what), "by ");
			local_hhmm(registry_site_tz(reg, site), n->due_us, what + 3,
				   sizeof(what) - 3);
		} else {
			char lim[16];

			limit_text(r->cfg.need_assign_limit_us, lim, sizeof(lim));
			snprintf(what, sizeof(what), "unassigned %s", lim);
		}
		snprintf(subject, sizeof(subject), "need:%s", id);
		if (find(r, KIND_NEED_OVERDUE, site, subject))
			continue;
		snprintf(ek, sizeof(ek), "need:%s", id);
		tmpl_init(&t, KIND_NEED_OVERDUE, site, subject, ek);
		snprintf(t.household, sizeof(t.household), "%s", n->household);
		/* the text's details (alerts.c): "<category> by 18:00" or
		 * "<category> unassigned 2 h"; the resolve's word replaces it */
		snprintf(t.reason, sizeof(t.reason), "%.12s %.18s",
			 n->category[0] ? n->category : "other", what);
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
		n->raised = true;
	}
	return 0;
}

/* call_missed: each household under an order in force, past its local
 * day's call_deadline with no reach that day, unless its order started
 * after that deadline. One alert per household and day (its event key
 * names the day): the last day's, still open, is resolved "next day" when
 * the new one is raised. An alert whose household has no order in force
 * any more is resolved "order ended". */
static int
tick_welfare(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	     struct rules_output *out)
{
	const int64_t now_s = now->wall_us / 1000000;
	const char *key, *site = NULL;
	int64_t day = 0, midnight = 0, deadline = 0;
	void *v;
	int err;

	/* the orders come by site: each site's day and deadline once */
	for (size_t i = 0; i < reg->nisolations; i++) {
		const struct reg_isolation *o = &reg->isolations[i];
		char k[3 * NORM_KEY_MAX], subject[ALERT_SUBJECT_MAX], ek[NORM_ID_MAX + 40];
		struct alert t, *a;
		struct tm tm;
		time_t day_t;

		if (o->starts_s * 1000000 > now->wall_us || now->wall_us >= o->ends_s * 1000000 ||
		    !in_scope(r, o->site))
			continue;
		if (!site || strcmp(site, o->site) != 0) {
			const struct tz *tz = registry_site_tz(reg, o->site);

			site = o->site;
			midnight = local_midnight(tz, now_s, &day);
			deadline = tz_local_to_utc(tz, day * 86400 + r->cfg.call_deadline_s);
		}
		if (now_s < deadline || o->starts_s > deadline)
			continue;
		key2(k, sizeof(k), o->site, o->household);
		if (seen(&r->welfare, k) >= midnight * 1000000)
			continue;
		/* raised today already, resolved by whom it may be: once a day */
		if (seen(&r->missed, k) == day + 1)
			continue;
		snprintf(subject, sizeof(subject), "household:%s", o->household);
		if ((a = find(r, KIND_CALL_MISSED, o->site, subject))) {
			if (a->raised_us >= midnight * 1000000)
				continue; /* today's */
			if ((err = close_alert(r, out, a, "next day", NULL, now)) < 0)
				return err;
		}
		day_t = (time_t)(day * 86400);
		gmtime_r(&day_t, &tm);
		snprintf(ek, sizeof(ek), "call_missed:%s:%04d-%02d-%02d", o->household,
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		tmpl_init(&t, KIND_CALL_MISSED, o->site, subject, ek);
		snprintf(t.household, sizeof(t.household), "%s", o->household);
		/* the text's detail (alerts.c): the deadline */
		snprintf(t.reason, sizeof(t.reason), "%02d:%02d",
			 (int)(r->cfg.call_deadline_s / 3600),
			 (int)(r->cfg.call_deadline_s / 60 % 60));
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
		if ((err = map_put(&r->missed, k, (void *)(intptr_t)(day + 1), NULL)) < 0)
			return err;
	}
	for (size_t it = 0; map_next(&r->alerts, &it, &key, &v);) {
		struct alert *a = v;

		if (a->kind == KIND_CALL_MISSED && !alert_state_is_aggregate(a) &&
		    alert_in_scope(r, a) &&
		    !under_isolation(reg, a->site, a->household, now->wall_us) &&
		    (err = close_alert(r, out, a, "order ended", NULL, now)) < 0)
			return err;
	}
	return 0;
}

/* Drops from `m` (values inline, keys site|household) the households with
 * no isolation order in the register any more: what bounds it. */
static void
forget_without_order(const struct registry_snapshot *reg, struct map *m)
{
	const char *key;
	void *v;

	for (size_t it = 0; map_next(m, &it, &key, &v);) {
		char site[NORM_ID_MAX + 1];
		const char *hh;
		size_t norders = 0;

		if (split_key(key, site, sizeof(site), &hh))
			(void)registry_isolations(reg, site, hh, &norders);
		if (!norders)
			map_remove(m, key);
	}
}

/* dropoff_uncollected: the earliest uncollected delivery of a household
 * waiting longer than dropoff_limit. Households with nothing waiting and
 * no order any more are forgotten (welfare too). */
static int
tick_drops(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	   struct rules_output *out)
{
	const char *key;
	void *v;

	for (size_t it = 0; map_next(&r->drops, &it, &key, &v);) {
		struct drops *d = v;
		char site[NORM_ID_MAX + 1], subject[ALERT_SUBJECT_MAX], ek[NORM_ID_MAX + 40];
		const char *hh;
		size_t norders = 0;
		struct alert t;
		int err;

		if (!split_key(key, site, sizeof(site), &hh))
			continue;
		if (d->n == 0) {
			(void)registry_isolations(reg, site, hh, &norders);
			if (!norders)
				free(map_remove(&r->drops, key));
			continue;
		}
		if (!in_scope(r, site))
			continue;
		snprintf(subject, sizeof(subject), "household:%s", hh);
		if (!drop_overdue(r, d, now) || d->raised_at == d->p[0].at ||
		    find(r, KIND_DROPOFF_UNCOLLECTED, site, subject))
			continue;
		snprintf(ek, sizeof(ek), "dropoff:%s:%" PRId64, hh, d->p[0].at);
		tmpl_init(&t, KIND_DROPOFF_UNCOLLECTED, site, subject, ek);
		snprintf(t.household, sizeof(t.household), "%s", hh);
		/* the text's detail (alerts.c): the limit */
		limit_text(r->cfg.dropoff_limit_us, t.reason, sizeof(t.reason));
		if ((err = trigger(r, out, &t, now)) < 0)
			return err;
		d->raised_at = d->p[0].at; /* once per delivery, resolved by whom it may be */
	}
	forget_without_order(reg, &r->welfare);
	forget_without_order(reg, &r->missed);
	return 0;
}

static int
tick_people(struct rules *r, const struct registry_snapshot *reg, const struct rules_clock *now,
	    struct rules_output *out)
{
	int err;

	if ((err = tick_needs(r, reg, now, out)) < 0 || (err = tick_welfare(r, reg, now, out)) < 0)
		return err;
	return tick_drops(r, reg, now, out);
}

/* The people work's rows of rules_restore_seen (its comment): as the
 * events would have left the state. 0, 1 (not kept) or -ENOMEM. */
static int
people_restore_seen(struct rules *r, const struct registry_snapshot *reg,
		    const struct alert_seen *x, const struct rules_clock *t)
{
	int64_t m = mono_of(t, x->at_us);
	char key[3 * NORM_KEY_MAX];
	size_t norders = 0;
	struct need *n;
	struct drops *d;
	int err = 0;

	switch (x->what) {
	case SEEN_NEED_OPEN:
	case SEEN_NEED_CATEGORY:
	case SEEN_NEED_DUE:
	case SEEN_NEED_ASSIGNED:
	case SEEN_NEED_DONE:
		if (!(n = need_of(r, x->site, x->id, &err)))
			return err < 0 ? err : 1;
		if (x->what == SEEN_NEED_DONE) {
			if (!n->done_mono || m < n->done_mono)
				n->done_mono = m;
		} else if (x->what == SEEN_NEED_OPEN) {
			if (!n->opened_mono || m < n->opened_mono)
				n->opened_mono = m;
			snprintf(n->household, sizeof(n->household), "%s", x->sub);
		} else if (x->what == SEEN_NEED_CATEGORY)
			snprintf(n->category, sizeof(n->category), "%s", x->sub);
		else if (x->what == SEEN_NEED_DUE) {
			n->due_us = x->at_us;
			n->due_mono = mono_ahead(t, x->at_us);
		} else
			n->assigned = true;
		return 0;
	case SEEN_WELFARE_REACHED:
		(void)registry_isolations(reg, x->site, x->id, &norders);
		if (!norders)
			return 1;
		key2(key, sizeof(key), x->site, x->id);
		return set_seen(&r->welfare, key, x->at_us);
	case SEEN_DROPOFF_PLACED:
	case SEEN_DROPOFF_COLLECTED:
		/* as the events would: a placement for a household under an
		 * order then, a collection of a household with an order */
		(void)registry_isolations(reg, x->site, x->id, &norders);
		if (x->what == SEEN_DROPOFF_PLACED ?
			    !under_isolation(reg, x->site, x->id, x->at_us) :
			    !norders)
			return 1;
		key2(key, sizeof(key), x->site, x->id);
		if (!(d = map_get_or_make(&r->drops, key, sizeof(*d))))
			return -ENOMEM;
		if (x->what == SEEN_DROPOFF_PLACED)
			drops_place(d, x->at_us, m);
		else
			drops_collect(d, x->at_us);
		return 0;
	default: return 1;
	}
}
