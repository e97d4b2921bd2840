/* Unit tests of the engine's scope (rules.c, rules_set_scope and
 * rules_forget_sites): a clustered instance acts only for the sites of
 * the shards it owns (docs/scaling.md). A site out of scope never raises,
 * its timers wait; forgetting a site's state and restoring it from the
 * rows PostgreSQL would hold gives the same alerts under the same ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"
#include "rules.h"
#include "tz.h"

#define S 1000000LL
#define MIN (60 * S)
#define HOUR (3600 * S)
/* 2020-02-16 00:00:00 UTC = 08:00 in Asia/Shanghai */
#define T0 (1581811200LL * S)
#define MONO0 (5000 * S)

/* ---- the register, by hand (as test_rules.c) ---- */

static int
cmp_pair(const void *a, const void *b)
{
	int c = strcmp(a, b);

	return c ? c : strcmp((const char *)a + REG_ID, (const char *)b + REG_ID);
}

static void *
grow(void **arr, size_t *n, size_t size)
{
	char *p = realloc(*arr, (*n + 1) * size);

	assert_non_null(p);
	*arr = p;
	memset(p + *n * size, 0, size);
	return p + (*n)++ * size;
}

static void
add_gate(struct registry_snapshot *s, const char *site, const char *gate, int sealed)
{
	struct reg_gate *x = grow((void **)&s->gates, &s->ngates, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->gate, REG_ID, "%s", gate);
	x->sealed = sealed;
	x->active = 1;
	qsort(s->gates, s->ngates, sizeof(*s->gates), cmp_pair);
}

static void
add_zone(struct registry_snapshot *s, const char *site, const char *zone)
{
	struct reg_zone *x = grow((void **)&s->zones, &s->nzones, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->zone, REG_ID, "%s", zone);
	qsort(s->zones, s->nzones, sizeof(*s->zones), cmp_pair);
}

static void
add_order(struct registry_snapshot *s, const char *site, const char *hh, const char *person,
	  int64_t starts_us, int64_t ends_us)
{
	struct reg_isolation *x = grow((void **)&s->isolations, &s->nisolations, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->household, REG_ID, "%s", hh);
	snprintf(x->person, REG_ID, "%s", person);
	x->starts_s = starts_us / S;
	x->ends_s = ends_us / S;
	x->check_interval_s = 3600;
	qsort(s->isolations, s->nisolations, sizeof(*s->isolations), cmp_pair);
}

/* Two sites alike: s1 and s2, each with a gate, a sealed gate, a zone, a
 * household under an order (two cards: one more than allowed). */
static void
build_register(struct registry_snapshot *reg)
{
	const char *sites[] = { "s1", "s2" };

	for (size_t i = 0; i < 2; i++) {
		add_gate(reg, sites[i], "G1", 0);
		add_gate(reg, sites[i], "G9", 1);
		add_zone(reg, sites[i], "Z1");
		add_order(reg, sites[i], "3-2-401", "P-7", T0 - 24 * HOUR, T0 + 24 * HOUR);
		assert_int_equal(registry_snapshot_add_household(reg, sites[i], "3-2-401", "3", "2",
								 "401", 3),
				 0);
		assert_int_equal(registry_snapshot_add_card(reg, sites[i], "C-1", "3-2-401", 0, 0),
				 0);
		assert_int_equal(registry_snapshot_add_card(reg, sites[i], "C-2", "3-2-401", 0, 0),
				 0);
	}
}

/* ---- the scope: a set of sites ---- */

struct scope {
	bool s1, s2;
	unsigned calls;
};

static bool
scope_fn(void *ctx, const char *site)
{
	struct scope *sc = ctx;

	sc->calls++;
	if (strcmp(site, "s1") == 0)
		return sc->s1;
	if (strcmp(site, "s2") == 0)
		return sc->s2;
	return false;
}

static bool
keep_s1(void *ctx, const char *site)
{
	(void)ctx;
	return strcmp(site, "s1") == 0;
}

static bool
keep_none(void *ctx, const char *site)
{
	(void)ctx;
	(void)site;
	return false;
}

/* ---- fixture ---- */

struct fx {
	struct rules *r;
	struct registry_snapshot *reg;
	struct rules_output out;
	struct scope scope;
	unsigned seq;
};

static struct rules_clock
clk(int64_t wall)
{
	return (struct rules_clock){ .wall_us = wall, .mono_us = wall - (T0 - MONO0) };
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rules_config cfg = {
		.fever_dc = 373,
		.critical_dc = 385,
		.recheck_window_us = 30 * MIN,
		.check_interval_us = 12 * HOUR,
		.check_grace_us = HOUR,
		.silence_timeout_us = 5 * MIN,
		.exit_quota = 1,
		.exit_window_us = 48 * HOUR,
		.disinfection_interval_us = 4 * HOUR,
		.hotline_medical_us = 30 * MIN,
		.hotline_other_us = 4 * HOUR,
		.repeat_interval_us = 60 * S,
		.max_open_alerts = 100,
		.cards_per_household = 1,
		.need_assign_limit_us = 2 * HOUR,
		.call_deadline_s = 9 * 3600,
		.dropoff_limit_us = 2 * HOUR,
	};
	struct rules_clock now = clk(T0);

	assert_non_null(f);
	assert_int_equal(rules_create(&cfg, &now, &f->r), 0);
	f->reg = registry_snapshot_empty("Asia/Shanghai");
	assert_non_null(f->reg);
	build_register(f->reg);
	f->scope.s1 = f->scope.s2 = true;
	rules_set_scope(f->r, scope_fn, &f->scope);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	rules_destroy(f->r);
	registry_snapshot_free(f->reg);
	rules_output_free(&f->out);
	free(f);
	return 0;
}

static struct event
ev_base(struct fx *f, enum event_type type, const char *site, int64_t at)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	snprintf(ev.site, sizeof(ev.site), "%s", site);
	snprintf(ev.key, sizeof(ev.key), "%s/k/%u", site, ++f->seq);
	ev.device_us = ev.received_us = ev.rule_us = at;
	ev.temp_dc = TEMP_NONE;
	ev.mask = -1;
	ev.urgent = -1;
	return ev;
}

static struct event
gate_ev(struct fx *f, const char *site, const char *gate, const char *card, const char *person,
	enum direction dir, int temp_dc, int64_t at)
{
	struct event ev = ev_base(f, EVENT_GATE, site, at);

	snprintf(ev.gate, sizeof(ev.gate), "%s", gate);
	snprintf(ev.card, sizeof(ev.card), "%s", card);
	snprintf(ev.person, sizeof(ev.person), "%s", person);
	ev.direction = dir;
	ev.temp_dc = (int16_t)temp_dc;
	return ev;
}

static struct event
hotline_ev(struct fx *f, const char *site, const char *call, enum call_action action, int64_t at)
{
	struct event ev = ev_base(f, EVENT_HOTLINE, site, at);

	snprintf(ev.call_id, sizeof(ev.call_id), "%s", call);
	snprintf(ev.category, sizeof(ev.category), "medical");
	snprintf(ev.household, sizeof(ev.household), "3-2-401");
	ev.call = action;
	ev.urgent = 1;
	return ev;
}

static struct event
check_ev(struct fx *f, const char *site, int temp_dc, int64_t at)
{
	struct event ev = ev_base(f, EVENT_CHECK, site, at);

	snprintf(ev.household, sizeof(ev.household), "3-2-401");
	snprintf(ev.person, sizeof(ev.person), "P-7");
	ev.temp_dc = (int16_t)temp_dc;
	return ev;
}

static void
apply(struct fx *f, const struct event *ev)
{
	struct rules_clock now = clk(ev->rule_us);

	rules_output_clear(&f->out);
	assert_int_equal(rules_event(f->r, f->reg, ev, &now, &f->out), 0);
}

static void
tick(struct fx *f, int64_t wall)
{
	struct rules_clock now = clk(wall);

	rules_output_clear(&f->out);
	assert_int_equal(rules_tick(f->r, f->reg, &now, &f->out), 0);
}

static void
judge(struct fx *f, int64_t wall)
{
	struct rules_clock now = clk(wall);

	rules_output_clear(&f->out);
	assert_int_equal(rules_register(f->r, f->reg, &now, &f->out), 0);
}

/* Transitions of `site` in the output. */
static size_t
of_site(const struct fx *f, const char *site)
{
	size_t n = 0;

	for (size_t i = 0; i < f->out.n; i++)
		n += strcmp(f->out.t[i].a.site, site) == 0;
	return n;
}

/* The transition of `kind` and `site` in the output, or NULL. */
static const struct alert_transition *
find_t(const struct fx *f, enum alert_kind kind, const char *site)
{
	for (size_t i = 0; i < f->out.n; i++)
		if (f->out.t[i].a.kind == kind && strcmp(f->out.t[i].a.site, site) == 0)
			return &f->out.t[i];
	return NULL;
}

/* The open alerts of `site`, copied as PostgreSQL would hold them, sorted
 * by id; how many. */
static int
cmp_alert_id(const void *a, const void *b)
{
	return strcmp(((const struct alert *)a)->alert_id, ((const struct alert *)b)->alert_id);
}

static size_t
open_of(struct fx *f, const char *site, struct alert *ret, size_t max)
{
	const struct alert *all[64];
	size_t n = rules_open_alerts(f->r, all, 64), k = 0;

	for (size_t i = 0; i < n && k < max; i++)
		if (strcmp(all[i]->site, site) == 0)
			ret[k++] = *all[i];
	if (k > 1)
		qsort(ret, k, sizeof(*ret), cmp_alert_id);
	return k;
}

static void
restore_seen(struct fx *f, const char *what, const char *site, const char *id, const char *sub,
	     int64_t at, int64_t now_wall)
{
	char at_text[24];
	const char *v[ALERT_STATE_SEEN_COLS] = { what, site, id, sub, at_text };
	struct alert_seen x;
	struct rules_clock now = clk(now_wall);

	snprintf(at_text, sizeof(at_text), "%" PRId64, at);
	assert_int_equal(alert_state_parse_seen(v, ALERT_STATE_SEEN_COLS, &x), 0);
	assert_int_equal(rules_restore_seen(f->r, f->reg, &x, &now), 0);
}

/* ---- tests ---- */

/* The timers of a site out of scope wait (its state kept), and go on
 * from that state once the site is in scope again; the other site's run
 * as before. */
static void
scope_excludes_timers(void **state)
{
	struct fx *f = *state;
	struct event ev;

	/* both gates talk at T0 + 1 min; an urgent call opens in each */
	ev = gate_ev(f, "s1", "G1", "C-1", "", DIR_IN, 365, T0 + MIN);
	apply(f, &ev);
	ev = gate_ev(f, "s2", "G1", "C-1", "", DIR_IN, 365, T0 + MIN);
	apply(f, &ev);
	ev = hotline_ev(f, "s1", "H-1", CALL_OPEN, T0);
	apply(f, &ev);
	ev = hotline_ev(f, "s2", "H-1", CALL_OPEN, T0);
	apply(f, &ev);
	f->scope.s2 = false;
	tick(f, T0 + 40 * MIN);
	/* s1: silent gate, unchecked order, the call, the zone (not yet) */
	assert_non_null(find_t(f, KIND_GATE_SILENT, "s1"));
	assert_non_null(find_t(f, KIND_HOTLINE_UNRESOLVED, "s1"));
	assert_non_null(find_t(f, KIND_ISOLATION_OVERDUE, "s1"));
	assert_int_equal(of_site(f, "s2"), 0);
	tick(f, T0 + 5 * HOUR);
	assert_non_null(find_t(f, KIND_DISINFECTION_OVERDUE, "s1"));
	assert_int_equal(of_site(f, "s2"), 0);
	/* the predicate is asked about s2 once a row of its entries, not per
	 * entry: fewer calls than the register has entries of s2 */
	f->scope.calls = 0;
	tick(f, T0 + 5 * HOUR + S);
	assert_true(f->scope.calls < 12);

	/* in scope again: the call is timed from its open, the gate from its
	 * last message (state kept, not a fresh start) */
	f->scope.s2 = true;
	tick(f, T0 + 5 * HOUR + 2 * S);
	assert_non_null(find_t(f, KIND_GATE_SILENT, "s2"));
	assert_non_null(find_t(f, KIND_HOTLINE_UNRESOLVED, "s2"));
	assert_non_null(find_t(f, KIND_ISOLATION_OVERDUE, "s2"));
	assert_non_null(find_t(f, KIND_DISINFECTION_OVERDUE, "s2"));
	{
		char ek[64];

		snprintf(ek, sizeof(ek), "silent:%" PRId64, (int64_t)(T0 + MIN));
		assert_string_equal(find_t(f, KIND_GATE_SILENT, "s2")->a.event_key, ek);
	}

	/* open alerts of a site out of scope: no repeats, no resolve by a
	 * timer (the order ends), no ack */
	f->scope.s2 = false;
	ev = gate_ev(f, "s2", "G1", "C-1", "", DIR_IN, 365, T0 + 6 * HOUR);
	apply(f, &ev); /* ignored: no "message received" resolve */
	assert_int_equal(f->out.n, 0);
	tick(f, T0 + 30 * HOUR); /* the orders ended */
	assert_non_null(find_t(f, KIND_ISOLATION_OVERDUE, "s1"));
	assert_int_equal(of_site(f, "s2"), 0);
}

/* With s2 out of scope from the start, nothing of any kind is raised for
 * it, and nothing of it is kept. */
static void
site_out_of_scope_never_raises(void **state)
{
	struct fx *f = *state;
	const char *sites[] = { "s1", "s2" };
	struct event ev;
	size_t before;
	size_t raised_s1 = 0;

	f->scope.s2 = false;
	judge(f, T0);
	assert_non_null(find_t(f, KIND_CARD_EXCEPTION, "s1"));
	assert_int_equal(of_site(f, "s2"), 0);
	before = rules_entries(f->r);
	for (size_t i = 0; i < 2; i++) {
		size_t entries = rules_entries(f->r);

		rules_output_clear(&f->out);
		ev = gate_ev(f, sites[i], "G1", "C-1", "P-1", DIR_IN, 390, T0 + MIN);
		apply(f, &ev); /* fever */
		raised_s1 += f->out.n;
		ev = gate_ev(f, sites[i], "G9", "C-1", "", DIR_OUT, 365, T0 + MIN);
		apply(f, &ev); /* sealed gate, isolation breach */
		raised_s1 += f->out.n;
		ev = gate_ev(f, sites[i], "G1", "C-404", "", DIR_IN, 365, T0 + MIN);
		apply(f, &ev); /* unknown card */
		raised_s1 += f->out.n;
		ev = gate_ev(f, sites[i], "G1", "C-2", "", DIR_OUT, 365, T0 + 2 * MIN);
		apply(f, &ev); /* exit quota (1 per 48 h: the second out) */
		raised_s1 += f->out.n;
		ev = check_ev(f, sites[i], 386, T0 + MIN);
		apply(f, &ev); /* fever at home */
		raised_s1 += f->out.n;
		ev = hotline_ev(f, sites[i], "H-1", CALL_OPEN, T0);
		apply(f, &ev);
		ev = ev_base(f, EVENT_NEED, sites[i], T0);
		snprintf(ev.need_id, sizeof(ev.need_id), "N-1");
		snprintf(ev.household, sizeof(ev.household), "3-2-401");
		ev.need = NEED_OPEN;
		apply(f, &ev);
		ev = ev_base(f, EVENT_DROPOFF, sites[i], T0);
		snprintf(ev.household, sizeof(ev.household), "3-2-401");
		ev.dropoff = DROPOFF_PLACED;
		apply(f, &ev);
		if (i == 1)
			assert_int_equal(rules_entries(f->r), entries); /* nothing kept */
	}
	assert_true(raised_s1 >= 6);
	assert_true(rules_entries(f->r) > before);
	for (int64_t t = T0 + 10 * MIN; t < T0 + 30 * HOUR; t += 10 * MIN) {
		tick(f, t);
		assert_int_equal(of_site(f, "s2"), 0);
	}
	judge(f, T0 + 30 * HOUR);
	assert_int_equal(of_site(f, "s2"), 0);
}

/* The shard of s2 lost, then taken back: its state forgotten (s1's kept,
 * nothing published), then restored from what PostgreSQL holds (its open
 * alerts, its last-seen times) gives the same open alerts under the same
 * ids, and the rules go on with them: a re-check resolves the fever, a
 * message the silence, a check the overdue, the call's limit runs from
 * its open. */
static void
forget_then_restore(void **state)
{
	struct fx *f = *state;
	struct alert before[32], after[32], s1_before[32], s1_after[32];
	size_t nb, na, n1;
	struct event ev;
	size_t entries;

	ev = gate_ev(f, "s2", "G1", "C-1", "P-1", DIR_IN, 381, T0 + MIN);
	apply(f, &ev);
	assert_non_null(find_t(f, KIND_FEVER, "s2"));
	ev = gate_ev(f, "s1", "G1", "C-1", "P-1", DIR_IN, 381, T0 + MIN);
	apply(f, &ev);
	ev = hotline_ev(f, "s2", "H-1", CALL_OPEN, T0);
	apply(f, &ev);
	ev = hotline_ev(f, "s2", "H-2", CALL_OPEN, T0 - HOUR);
	apply(f, &ev);
	ev = hotline_ev(f, "s2", "H-2", CALL_RESOLVE, T0 - 30 * MIN);
	apply(f, &ev);
	judge(f, T0 + MIN);
	tick(f, T0 + 7 * MIN); /* gate_silent of G1 at both, isolation_overdue */
	assert_non_null(find_t(f, KIND_GATE_SILENT, "s2"));
	assert_non_null(find_t(f, KIND_ISOLATION_OVERDUE, "s2"));
	nb = open_of(f, "s2", before, 32);
	assert_int_equal(nb, 4); /* fever, card_exception, gate_silent, isolation_overdue */
	n1 = open_of(f, "s1", s1_before, 32);
	entries = rules_entries(f->r);

	/* lost */
	rules_output_clear(&f->out);
	assert_true(rules_forget_sites(f->r, keep_s1, NULL) > 0);
	assert_int_equal(f->out.n, 0);
	assert_int_equal(open_of(f, "s2", after, 32), 0);
	assert_int_equal(open_of(f, "s1", s1_after, 32), n1);
	assert_memory_equal(s1_before, s1_after, n1 * sizeof(*s1_after));
	assert_true(rules_entries(f->r) < entries);
	/* nothing of s2 left to time: in scope, its timers raise nothing new
	 * but what a fresh start would (the register's own: the order) */
	f->scope.s2 = false;
	tick(f, T0 + 8 * MIN);
	assert_int_equal(of_site(f, "s2"), 0);

	/* taken back: the rows PostgreSQL holds (as alert_state.c's SQL
	 * would read them), then the shard in scope */
	rules_output_clear(&f->out);
	for (size_t i = 0; i < nb; i++) {
		struct rules_clock now = clk(T0 + 9 * MIN);

		assert_int_equal(rules_restore_alert(f->r, &before[i], &now, &f->out), 0);
	}
	assert_int_equal(f->out.n, 0);
	restore_seen(f, "gate", "s2", "G1", "", T0 + MIN, T0 + 9 * MIN);
	restore_seen(f, "call", "s2", "H-1", "medical", T0, T0 + 9 * MIN);
	restore_seen(f, "call_resolved", "s2", "H-2", "", T0 - 30 * MIN, T0 + 9 * MIN);
	for (size_t i = 0; i < nb; i++)
		if (before[i].kind == KIND_CARD_EXCEPTION) {
			char sub[128];

			snprintf(sub, sizeof(sub), "%.32s %.40s 0", before[i].alert_id,
				 before[i].event_key);
			restore_seen(f, "card_exception", "s2", "3-2-401", sub, before[i].raised_us,
				     T0 + 9 * MIN);
		}
	f->scope.s2 = true;
	na = open_of(f, "s2", after, 32);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_string_equal(after[i].alert_id, before[i].alert_id);
		assert_int_equal(after[i].kind, before[i].kind);
		assert_string_equal(after[i].subject, before[i].subject);
		assert_int_equal(after[i].count, before[i].count);
	}
	/* the register's rules and the timers: nothing raised twice */
	judge(f, T0 + 9 * MIN);
	assert_int_equal(of_site(f, "s2"), 0);
	tick(f, T0 + 9 * MIN);
	assert_int_equal(of_site(f, "s2"), 0);

	/* and they go on */
	ev = gate_ev(f, "s2", "G1", "C-1", "P-1", DIR_IN, 365, T0 + 10 * MIN);
	apply(f, &ev);
	assert_non_null(find_t(f, KIND_FEVER, "s2"));
	assert_string_equal(find_t(f, KIND_FEVER, "s2")->what, "resolved");
	assert_non_null(find_t(f, KIND_GATE_SILENT, "s2"));
	assert_string_equal(find_t(f, KIND_GATE_SILENT, "s2")->what, "resolved");
	for (size_t i = 0; i < nb; i++)
		if (before[i].kind == KIND_FEVER)
			assert_string_equal(find_t(f, KIND_FEVER, "s2")->a.alert_id,
					    before[i].alert_id);
	ev = check_ev(f, "s2", 365, T0 + 11 * MIN);
	apply(f, &ev);
	assert_non_null(find_t(f, KIND_ISOLATION_OVERDUE, "s2"));
	assert_string_equal(find_t(f, KIND_ISOLATION_OVERDUE, "s2")->what, "resolved");
	tick(f, T0 + 30 * MIN);
	assert_null(find_t(f, KIND_HOTLINE_UNRESOLVED, "s2"));
	tick(f, T0 + 30 * MIN + S);
	assert_non_null(find_t(f, KIND_HOTLINE_UNRESOLVED, "s2"));
	/* the resolved call is remembered: a late open is not followed */
	entries = rules_entries(f->r);
	ev = hotline_ev(f, "s2", "H-2", CALL_OPEN, T0 - HOUR);
	apply(f, &ev);
	assert_int_equal(rules_entries(f->r), entries);
}

/* The instance-level alerts are nobody's site: forgetting every site
 * keeps them, and out of every scope they go on. */
static void
forget_keeps_instance_alerts(void **state)
{
	struct fx *f = *state;
	struct rules_clock now = clk(T0);
	struct event ev;

	rules_output_clear(&f->out);
	assert_int_equal(rules_backlog(f->r, "cordond-a", 1, "PostgreSQL down", &now, &f->out), 0);
	assert_int_equal(f->out.n, 1);
	ev = gate_ev(f, "s1", "G1", "C-1", "P-1", DIR_IN, 381, T0 + MIN);
	apply(f, &ev);
	rules_forget_sites(f->r, keep_none, NULL);
	{
		const struct alert *a[8];

		assert_int_equal(rules_open_alerts(f->r, a, 8), 1);
		assert_int_equal(a[0]->kind, KIND_BACKLOG);
	}
	f->scope.s1 = f->scope.s2 = false;
	now = clk(T0 + 5 * MIN);
	rules_output_clear(&f->out);
	assert_int_equal(rules_backlog(f->r, "cordond-a", 0, "", &now, &f->out), 0);
	assert_int_equal(f->out.n, 1);
	assert_string_equal(f->out.t[0].what, "resolved");
	/* no scope: forget with no predicate of its own forgets nothing */
	rules_set_scope(f->r, NULL, NULL);
	ev = gate_ev(f, "s1", "G1", "C-1", "P-1", DIR_IN, 381, T0 + 6 * MIN);
	apply(f, &ev);
	assert_int_equal(rules_forget_sites(f->r, NULL, NULL), 0);
}

/* The resolved calls are a map and a min-heap: after a forget the heap is
 * made again, so that the bound (RULES_RESOLVED_MAX, 10,000) still
 * forgets the call resolved earliest. Prints how long a forget of a large
 * state takes. */
static void
forget_rebuilds_the_resolved_heap(void **state)
{
	struct fx *f = *state;
	char call[32];
	struct event ev;
	struct timespec t0, t1;
	size_t entries, dropped;

	/* 5,000 resolved calls in each site, interleaved in time */
	for (int i = 0; i < 5000; i++) {
		snprintf(call, sizeof(call), "R-%d", i);
		ev = hotline_ev(f, "s1", call, CALL_RESOLVE, T0 - 20 * HOUR + (2 * i) * S);
		apply(f, &ev);
		ev = hotline_ev(f, "s2", call, CALL_RESOLVE, T0 - 20 * HOUR + (2 * i + 1) * S);
		apply(f, &ev);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dropped = rules_forget_sites(f->r, keep_s1, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(dropped, 5000);
	print_message("forget of %zu entries (of %zu): %.3f ms\n", dropped, dropped + 5000,
		      ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
			      1e6);
	/* 6,000 more of s1, later: the 1,000 earliest of s1 go */
	for (int i = 5000; i < 11000; i++) {
		snprintf(call, sizeof(call), "R-%d", i);
		ev = hotline_ev(f, "s1", call, CALL_RESOLVE, T0 - 10 * HOUR + i * S);
		apply(f, &ev);
	}
	entries = rules_entries(f->r);
	ev = hotline_ev(f, "s1", "R-1000", CALL_OPEN, T0 - 21 * HOUR);
	apply(f, &ev); /* remembered: not followed */
	assert_int_equal(rules_entries(f->r), entries);
	ev = hotline_ev(f, "s1", "R-999", CALL_OPEN, T0 - 21 * HOUR);
	apply(f, &ev); /* forgotten by the bound: followed as a new call */
	assert_int_equal(rules_entries(f->r), entries + 1);
}

/* How long a forget takes over a large state: FORGET_N open fever alerts
 * (with their ids and counts), 2 * FORGET_N readings, FORGET_N gates seen
 * (the register's gates of build_register replaced), all forgotten. A
 * figure, not an assertion. */
#define FORGET_N 10000

static void
forget_time(void **state)
{
	struct fx *f = *state;
	struct timespec t0, t1;
	char site[16], gate[16], person[16];
	size_t entries, dropped;
	struct event ev;

	free(f->reg->gates);
	f->reg->gates = calloc(FORGET_N, sizeof(*f->reg->gates));
	assert_non_null(f->reg->gates);
	f->reg->ngates = FORGET_N;
	for (int i = 0; i < FORGET_N; i++) {
		struct reg_gate *x = &f->reg->gates[i];

		snprintf(x->site, REG_ID, "x%d", i % 200);
		snprintf(x->gate, REG_ID, "G%d", i);
		x->active = 1;
	}
	qsort(f->reg->gates, f->reg->ngates, sizeof(*f->reg->gates), cmp_pair);
	f->scope.s1 = f->scope.s2 = true;
	rules_set_scope(f->r, NULL, NULL);
	for (int i = 0; i < FORGET_N; i++) {
		snprintf(site, sizeof(site), "x%d", i % 200);
		snprintf(gate, sizeof(gate), "G%d", i);
		snprintf(person, sizeof(person), "P-%d", i);
		ev = gate_ev(f, site, gate, "", person, DIR_IN, 381, T0 + MIN);
		apply(f, &ev);
		snprintf(person, sizeof(person), "Q-%d", i);
		ev = gate_ev(f, site, gate, "", person, DIR_IN, 365, T0 + MIN);
		apply(f, &ev);
	}
	entries = rules_entries(f->r);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dropped = rules_forget_sites(f->r, keep_s1, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("forget of %zu entries of %zu: %.3f ms\n", dropped, entries,
		      ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
			      1e6);
	assert_true(dropped > 0);
	assert_int_equal(rules_entries(f->r), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(scope_excludes_timers),
		T(site_out_of_scope_never_raises),
		T(forget_then_restore),
		T(forget_keeps_instance_alerts),
		T(forget_rebuilds_the_resolved_heap),
		T(forget_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
