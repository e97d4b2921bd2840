/* Unit tests of the alert engine (rules.c): every kind of the catalogue
 * (SPEC 4) raised and resolved, dedupe and repeats, acks, alert ids,
 * restored state, and the 06:00-22:00 disinfection clock. Pure: events
 * and ticks go in with their times; the register is a snapshot built by
 * hand, sorted as registry.c sorts it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "rules.h"
#include "tz.h"

#define S 1000000LL
#define MIN (60 * S)
#define HOUR (3600 * S)
/* 2020-02-16 00:00:00 UTC = 08:00 in Asia/Shanghai */
#define T0 (1581811200LL * S)

/* ---- the register, by hand ---- */

static int
cmp_pair(const void *a, const void *b)
{
	int c = strcmp(a, b);

	return c ? c : strcmp((const char *)a + REG_ID, (const char *)b + REG_ID);
}

static int
cmp_site(const void *a, const void *b)
{
	return strcmp(((const struct reg_site *)a)->site, ((const struct reg_site *)b)->site);
}

/* Appends one element to a snapshot array (realloc) and returns it zeroed. */
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
add_site(struct registry_snapshot *s, const char *site, const char *zone)
{
	struct reg_site *x = grow((void **)&s->sites, &s->nsites, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	assert_int_equal(tz_load(zone, &x->tz), 0);
	qsort(s->sites, s->nsites, sizeof(*s->sites), cmp_site);
}

static void
add_gate(struct registry_snapshot *s, const char *site, const char *gate, int sealed, int active)
{
	struct reg_gate *x = grow((void **)&s->gates, &s->ngates, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->gate, REG_ID, "%s", gate);
	x->sealed = sealed;
	x->active = active;
	qsort(s->gates, s->ngates, sizeof(*s->gates), cmp_pair);
}

static void
add_zone(struct registry_snapshot *s, const char *site, const char *zone, int64_t interval_s)
{
	struct reg_zone *x = grow((void **)&s->zones, &s->nzones, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->zone, REG_ID, "%s", zone);
	x->interval_s = interval_s;
	qsort(s->zones, s->nzones, sizeof(*s->zones), cmp_pair);
}

static void
add_household(struct registry_snapshot *s, const char *site, const char *hh)
{
	assert_int_equal(registry_snapshot_add_household(s, site, hh, "3", "2", "401", 3), 0);
}

static void
add_card(struct registry_snapshot *s, const char *site, const char *card, const char *hh,
	 int revoked)
{
	assert_int_equal(registry_snapshot_add_card(s, site, card, hh, revoked, 0), 0);
}

static void
add_order(struct registry_snapshot *s, const char *site, const char *hh, const char *person,
	  int64_t starts_us, int64_t ends_us, int64_t check_interval_s)
{
	struct reg_isolation *x = grow((void **)&s->isolations, &s->nisolations, sizeof(*x));

	snprintf(x->site, REG_ID, "%s", site);
	snprintf(x->household, REG_ID, "%s", hh);
	snprintf(x->person, REG_ID, "%s", person);
	x->starts_s = starts_us / S;
	x->ends_s = ends_us / S;
	x->check_interval_s = check_interval_s;
	qsort(s->isolations, s->nisolations, sizeof(*s->isolations), cmp_pair);
}

/* ---- fixture: an engine, a register and an output ---- */

struct fx {
	struct rules_config cfg;
	struct rules *r;
	struct registry_snapshot *reg;
	struct rules_output out;
	unsigned seq;
	int64_t off; /* wall - monotonic: a step of the wall clock changes it */
};

/* The monotonic clock reads MONO0 at T0 (some 80 minutes after a boot):
 * times from before the boot lie before its origin. */
#define MONO0 (5000 * S)

/* The clocks when the wall clock reads `wall`. */
static struct rules_clock
clk(const struct fx *f, int64_t wall)
{
	return (struct rules_clock){ .wall_us = wall, .mono_us = wall - f->off };
}

/* The clocks when the monotonic clock reads `mono`. */
static struct rules_clock
clk_mono(const struct fx *f, int64_t mono)
{
	return (struct rules_clock){ .wall_us = mono + f->off, .mono_us = mono };
}

static struct rules_config
default_config(void)
{
	return (struct rules_config){
		.fever_dc = 373,
		.critical_dc = 385,
		.recheck_window_us = 30 * MIN,
		.check_interval_us = 12 * HOUR,
		.check_grace_us = HOUR,
		.silence_timeout_us = 5 * MIN,
		.exit_quota = 0,
		.exit_window_us = 48 * HOUR,
		.disinfection_interval_us = 4 * HOUR,
		.hotline_medical_us = 30 * MIN,
		.hotline_other_us = 4 * HOUR,
		.repeat_interval_us = 60 * S,
		.need_assign_limit_us = 2 * HOUR,
		.call_deadline_s = 20 * 3600,
		.dropoff_limit_us = 2 * HOUR,
	};
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->cfg = default_config();
	f->off = T0 - MONO0;
	{
		struct rules_clock now = clk(f, T0);

		assert_int_equal(rules_create(&f->cfg, &now, &f->r), 0);
	}
	f->reg = registry_snapshot_empty("Asia/Shanghai");
	assert_non_null(f->reg);
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

static void
set_config(struct fx *f)
{
	rules_set_config(f->r, &f->cfg);
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
status_ev(struct fx *f, const char *site, const char *gate, enum gate_state st, int64_t at)
{
	struct event ev = ev_base(f, EVENT_STATUS, site, at);

	snprintf(ev.gate, sizeof(ev.gate), "%s", gate);
	ev.state = st;
	return ev;
}

static struct event
check_ev(struct fx *f, const char *site, const char *hh, const char *person, int temp_dc,
	 const char *symptoms, int64_t at)
{
	struct event ev = ev_base(f, EVENT_CHECK, site, at);

	snprintf(ev.household, sizeof(ev.household), "%s", hh);
	snprintf(ev.person, sizeof(ev.person), "%s", person);
	snprintf(ev.text, sizeof(ev.text), "%s", symptoms);
	ev.temp_dc = (int16_t)temp_dc;
	return ev;
}

static struct event
hotline_ev(struct fx *f, const char *site, const char *call, enum call_action action,
	   const char *category, int urgent, int64_t at)
{
	struct event ev = ev_base(f, EVENT_HOTLINE, site, at);

	snprintf(ev.call_id, sizeof(ev.call_id), "%s", call);
	snprintf(ev.category, sizeof(ev.category), "%s", category);
	snprintf(ev.household, sizeof(ev.household), "3-2-401");
	ev.call = action;
	ev.urgent = (int8_t)urgent;
	return ev;
}

static struct event
ack_ev(struct fx *f, const char *site, const char *alert_id, enum ack_action action, const char *by,
       int64_t at)
{
	struct event ev = ev_base(f, EVENT_ACK, site, at);

	snprintf(ev.alert_id, sizeof(ev.alert_id), "%s", alert_id);
	snprintf(ev.by, sizeof(ev.by), "%s", by);
	ev.ack = action;
	return ev;
}

/* Applies ev, processed when the wall clock reads its rule time. */
static void
apply(struct fx *f, const struct event *ev)
{
	struct rules_clock now = clk(f, ev->rule_us);

	rules_output_clear(&f->out);
	assert_int_equal(rules_event(f->r, f->reg, ev, &now, &f->out), 0);
}

/* Applies ev, processed at `now`. */
static void
apply_at(struct fx *f, const struct event *ev, struct rules_clock now)
{
	rules_output_clear(&f->out);
	assert_int_equal(rules_event(f->r, f->reg, ev, &now, &f->out), 0);
}

/* A tick when the wall clock reads `wall`. */
static void
tick(struct fx *f, int64_t wall)
{
	struct rules_clock now = clk(f, wall);

	rules_output_clear(&f->out);
	assert_int_equal(rules_tick(f->r, f->reg, &now, &f->out), 0);
}

/* A tick when the monotonic clock reads `mono`. */
static void
tick_mono(struct fx *f, int64_t mono)
{
	struct rules_clock now = clk_mono(f, mono);

	rules_output_clear(&f->out);
	assert_int_equal(rules_tick(f->r, f->reg, &now, &f->out), 0);
}

/* Restores `a` when the wall clock reads T0. */
static int
restore_alert(struct fx *f, const struct alert *a)
{
	struct rules_clock now = clk(f, T0);

	return rules_restore_alert(f->r, a, &now, &f->out);
}

/* rules_restore_seen of a row as the register thread parses it. */
static int
restore_seen_in(struct rules *r, const struct registry_snapshot *reg, const char *what,
		const char *site, const char *id, const char *sub, int64_t at,
		struct rules_clock now)
{
	char at_text[24];
	const char *v[ALERT_STATE_SEEN_COLS] = { what, site, id, sub, at_text };
	struct alert_seen x;

	snprintf(at_text, sizeof(at_text), "%" PRId64, at);
	assert_int_equal(alert_state_parse_seen(v, ALERT_STATE_SEEN_COLS, &x), 0);
	return rules_restore_seen(r, reg, &x, &now);
}

static void
restore_seen(struct fx *f, const char *what, const char *site, const char *id, const char *sub,
	     int64_t at, int64_t now_wall)
{
	assert_int_equal(restore_seen_in(f->r, f->reg, what, site, id, sub, at, clk(f, now_wall)),
			 0);
}

/* The only transition in the output; asserts there is exactly one. */
static const struct alert_transition *
only(struct fx *f, enum alert_kind kind, const char *what)
{
	for (size_t i = 0; f->out.n != 1 && i < f->out.n; i++)
		print_message("transition %zu: %s %s %s\n", i,
			      alert_state_kind_name(f->out.t[i].a.kind), f->out.t[i].what,
			      f->out.t[i].a.subject);
	assert_int_equal(f->out.n, 1);
	assert_int_equal(f->out.t[0].a.kind, kind);
	assert_string_equal(f->out.t[0].what, what);
	return &f->out.t[0];
}

static void
none(struct fx *f)
{
	if (f->out.n)
		fail_msg("unexpected transition: %s %s %s",
			 alert_state_kind_name(f->out.t[0].a.kind), f->out.t[0].what,
			 f->out.t[0].a.subject);
}

static size_t
open_count(struct fx *f)
{
	const struct alert *a[64];

	return rules_open_alerts(f->r, a, 64);
}

/* ---- fever ---- */

static void
fever_severity_and_fields(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-0412", "P-10233", DIR_IN, 386, T0 + S);
	const struct alert *a;

	apply(f, &ev);
	a = &only(f, KIND_FEVER, "raised")->a;
	assert_int_equal(a->severity, SEVERITY_CRITICAL);
	assert_int_equal(a->state, ALERT_RAISED);
	assert_string_equal(a->site, "s1");
	assert_string_equal(a->subject, "person:P-10233");
	assert_string_equal(a->gate, "G03");
	assert_string_equal(a->card, "C-0412");
	assert_string_equal(a->event_key, ev.key);
	assert_int_equal(a->temp_dc, 386);
	assert_int_equal(a->count, 1);
	assert_true(a->raised_us == T0 + S && a->updated_us == T0 + S);
	assert_int_equal(strlen(a->alert_id), 32);

	/* 37.3 is a fever (>=), warning; 37.2 is not */
	ev = gate_ev(f, "s1", "G03", "C-2", "P-2", DIR_IN, 373, T0 + S);
	apply(f, &ev);
	assert_int_equal(only(f, KIND_FEVER, "raised")->a.severity, SEVERITY_WARNING);
	ev = gate_ev(f, "s1", "G03", "C-3", "P-3", DIR_IN, 372, T0 + S);
	apply(f, &ev);
	none(f);
	/* 38.5 is critical (>=) */
	ev = gate_ev(f, "s1", "G03", "C-4", "P-4", DIR_IN, 385, T0 + S);
	apply(f, &ev);
	assert_int_equal(only(f, KIND_FEVER, "raised")->a.severity, SEVERITY_CRITICAL);
}

static void
fever_never_from_implausible_or_missing(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, 989, T0);

	ev.flags = FLAG_IMPLAUSIBLE;
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, TEMP_NONE, T0);
	apply(f, &ev);
	none(f);
	/* the device's own verdict does not decide */
	ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, 365, T0);
	ev.flags = FLAG_DEVICE_ABNORMAL;
	apply(f, &ev);
	none(f);
	assert_int_equal(open_count(f), 0);
}

static void
fever_subject_person_card_gate(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G01", "C-9", "", DIR_IN, 380, T0);
	char a1[33];

	apply(f, &ev);
	assert_string_equal(only(f, KIND_FEVER, "raised")->a.subject, "card:C-9");
	ev = gate_ev(f, "s1", "G01", "", "", DIR_IN, 380, T0);
	apply(f, &ev);
	assert_memory_equal(only(f, KIND_FEVER, "raised")->a.subject, "gate:G01:", 9);
	assert_int_equal(strlen(f->out.t[0].a.subject), 9 + 12);
	memcpy(a1, f->out.t[0].a.alert_id, 33);
	/* an anonymous reading is its own subject: a second one is a second alert */
	ev = gate_ev(f, "s1", "G01", "", "", DIR_IN, 381, T0);
	apply(f, &ev);
	assert_string_not_equal(only(f, KIND_FEVER, "raised")->a.alert_id, a1);
}

/* A device that reused a record id (issue 14.7): an anonymous reading is
 * its own subject by key and content, so a later reading under the same key
 * with other content is judged as the new reading it is (another alert, no
 * "recheck" of the first); a redelivery (same content) is the same subject.
 * The alert carries its event's content hash, for the store. */
static void
fever_anonymous_reused_key(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G01", "", "", DIR_IN, 385, T0);
	struct event again, other, normal;
	char a1[33];

	memset(ev.content_hash, 0xa1, sizeof(ev.content_hash));
	apply(f, &ev);
	assert_memory_equal(only(f, KIND_FEVER, "raised")->a.event_hash, ev.content_hash,
			    NORM_HASH_LEN);
	memcpy(a1, f->out.t[0].a.alert_id, 33);
	/* the same reading again: the same alert, counted */
	again = ev;
	apply(f, &again);
	assert_int_equal(open_count(f), 1);
	/* a normal reading under the same key, other content: not a recheck */
	normal = gate_ev(f, "s1", "G01", "", "", DIR_IN, 365, T0 + S);
	snprintf(normal.key, sizeof(normal.key), "%s", ev.key);
	memset(normal.content_hash, 0xb2, sizeof(normal.content_hash));
	apply(f, &normal);
	none(f);
	assert_int_equal(open_count(f), 1);
	/* a fever under the same key, other content: an alert of its own */
	other = gate_ev(f, "s1", "G01", "", "", DIR_IN, 390, T0 + 2 * S);
	snprintf(other.key, sizeof(other.key), "%s", ev.key);
	memset(other.content_hash, 0xc3, sizeof(other.content_hash));
	apply(f, &other);
	assert_string_not_equal(only(f, KIND_FEVER, "raised")->a.alert_id, a1);
	assert_memory_equal(f->out.t[0].a.event_hash, other.content_hash, NORM_HASH_LEN);
	assert_string_equal(f->out.t[0].a.event_key, ev.key);
	assert_int_equal(open_count(f), 2);
}

static void
fever_rechecked_within_window(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 380, T0);
	char id[33];

	f->cfg.recheck_window_us = 10 * MIN;
	set_config(f);
	apply(f, &ev);
	memcpy(id, only(f, KIND_FEVER, "raised")->a.alert_id, 33);
	/* another person's normal reading changes nothing */
	ev = gate_ev(f, "s1", "G03", "C-2", "P-2", DIR_IN, 365, T0 + MIN);
	apply(f, &ev);
	none(f);
	/* the same person, normal, within the window */
	ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, 365, T0 + 10 * MIN);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_FEVER, "resolved")->a.alert_id, id);
	assert_string_equal(f->out.t[0].a.reason, "rechecked");
	assert_int_equal(f->out.t[0].a.state, ALERT_RESOLVED);
	assert_true(f->out.t[0].a.resolved_us == T0 + 10 * MIN);
	assert_int_equal(open_count(f), 0);

	/* outside the window: stays open (an operator must resolve it) */
	ev = gate_ev(f, "s1", "G03", "C-5", "P-5", DIR_IN, 380, T0 + HOUR);
	apply(f, &ev);
	only(f, KIND_FEVER, "raised");
	ev = gate_ev(f, "s1", "G03", "C-5", "P-5", DIR_IN, 365, T0 + HOUR + 10 * MIN + 1);
	apply(f, &ev);
	none(f);
	assert_int_equal(open_count(f), 1);
}

/* Readings kept for rechecks out of order do not undo an operator's
 * resolve: a recheck after it publishes nothing, a fever dated before the
 * resolved alert's raises nothing, a later fever raises a new alert; and
 * a restored alert (no readings kept) is resolved by its recheck. */
static void
fever_after_operator_resolve_and_restore(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "", "P-1", DIR_IN, 380, T0);
	struct alert a;
	char id[33];

	apply(f, &ev);
	memcpy(id, only(f, KIND_FEVER, "raised")->a.alert_id, 33);
	ev = ack_ev(f, "s1", id, ACK_RESOLVE, "op-1", T0 + MIN);
	apply(f, &ev);
	only(f, KIND_FEVER, "resolved");
	ev = gate_ev(f, "s1", "G03", "", "P-1", DIR_IN, 381, T0 - MIN);
	apply_at(f, &ev, clk(f, T0 + 2 * MIN));
	none(f);
	ev = gate_ev(f, "s1", "G03", "", "P-1", DIR_IN, 365, T0 + 5 * MIN);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G03", "", "P-1", DIR_IN, 381, T0 + 40 * MIN);
	apply(f, &ev);
	assert_string_not_equal(only(f, KIND_FEVER, "raised")->a.alert_id, id);

	/* restored from PostgreSQL: the recheck within its window resolves it */
	memset(&a, 0, sizeof(a));
	a.kind = KIND_FEVER;
	a.state = ALERT_RAISED;
	a.temp_dc = 385;
	snprintf(a.site, sizeof(a.site), "s1");
	snprintf(a.subject, sizeof(a.subject), "person:P-9");
	snprintf(a.event_key, sizeof(a.event_key), "s1/k/x");
	rules_alert_id("s1", "fever", a.subject, a.event_key, a.alert_id);
	a.raised_us = a.updated_us = T0 - 10 * MIN;
	a.count = 1;
	assert_int_equal(restore_alert(f, &a), 0);
	ev = gate_ev(f, "s1", "G03", "", "P-9", DIR_IN, 365, T0 + 5 * MIN);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_FEVER, "resolved")->a.alert_id, a.alert_id);
}

static void
fever_from_isolation_check(void **state)
{
	struct fx *f = *state;
	struct event ev = check_ev(f, "s1", "3-2-401", "P-7", 379, "", T0);

	apply(f, &ev);
	only(f, KIND_FEVER, "raised");
	assert_string_equal(f->out.t[0].a.subject, "person:P-7");
	assert_string_equal(f->out.t[0].a.household, "3-2-401");
	assert_string_equal(f->out.t[0].a.gate, "");
	/* the gate reading of the same person counts as the same subject */
	ev = gate_ev(f, "s1", "G01", "C-1", "P-7", DIR_IN, 364, T0 + MIN);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_FEVER, "resolved")->a.reason, "rechecked");
}

/* ---- lifecycle ---- */

static void
dedupe_and_repeat_interval(void **state)
{
	struct fx *f = *state;
	char id[33];

	for (int i = 0; i < 50; i++) {
		struct event ev =
			gate_ev(f, "s1", "G02", "C-1", "P-1", DIR_IN, 380 + i % 5, T0 + i * 100000);

		apply(f, &ev);
		if (i == 0)
			memcpy(id, only(f, KIND_FEVER, "raised")->a.alert_id, 33);
		else
			none(f);
	}
	assert_int_equal(open_count(f), 1);
	tick(f, T0 + 30 * S);
	none(f);
	tick(f, T0 + 60 * S);
	assert_string_equal(only(f, KIND_FEVER, "updated")->a.alert_id, id);
	assert_int_equal(f->out.t[0].a.count, 50);
	assert_int_equal(f->out.t[0].a.temp_dc, 384); /* the latest reading */
	tick(f, T0 + 200 * S);
	none(f); /* nothing new: nothing to republish */
	/* a trigger after repeat_interval is published at once */
	{
		struct event ev = gate_ev(f, "s1", "G02", "C-1", "P-1", DIR_IN, 390, T0 + 200 * S);

		apply(f, &ev);
		only(f, KIND_FEVER, "updated");
		assert_int_equal(f->out.t[0].a.count, 51);
		/* severity only goes up */
		assert_int_equal(f->out.t[0].a.severity, SEVERITY_CRITICAL);
	}
	{
		struct event ev = gate_ev(f, "s1", "G02", "C-1", "P-1", DIR_IN, 375, T0 + 300 * S);

		apply(f, &ev);
		assert_int_equal(only(f, KIND_FEVER, "updated")->a.severity, SEVERITY_CRITICAL);
	}
}

static void
alert_id_stable_across_engines(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 386, T0);
	struct rules *other;
	struct rules_output out = { 0 };
	char id[33], id2[33];

	apply(f, &ev);
	memcpy(id, only(f, KIND_FEVER, "raised")->a.alert_id, 33);
	/* a replay after a crash: a new engine, later, the same event as the
	 * spool kept it (its receive and rule times included) */
	{
		/* another boot: another monotonic origin */
		struct rules_clock later = { .wall_us = T0 + HOUR, .mono_us = 7 * S };

		assert_int_equal(rules_create(&f->cfg, &later, &other), 0);
		assert_int_equal(rules_event(other, f->reg, &ev, &later, &out), 0);
	}
	assert_int_equal(out.n, 1);
	assert_string_equal(out.t[0].a.alert_id, id);
	rules_output_free(&out);
	rules_destroy(other);

	{
		/* the id is the hash of site, kind, subject, event key @ time */
		char ek[NORM_KEY_MAX + 24];

		snprintf(ek, sizeof(ek), "%s@%lld", ev.key, (long long)ev.rule_us);
		rules_alert_id("s1", "fever", "person:P-1", ek, id2);
		assert_string_equal(id, id2);
	}
	rules_alert_id("s1", "fever", "person:P-1", "s1/k/other", id2);
	assert_string_not_equal(id, id2);
	rules_alert_id("s2", "fever", "person:P-1", ev.key, id2);
	assert_string_not_equal(id, id2);
	/* the parts are delimited: "ab"+"c" is not "a"+"bc" */
	rules_alert_id("s1", "fever", "ab", "c", id);
	rules_alert_id("s1", "fever", "a", "bc", id2);
	assert_string_not_equal(id, id2);
}

static void
ack_then_resolve(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 386, T0);
	char id[33];

	apply(f, &ev);
	memcpy(id, only(f, KIND_FEVER, "raised")->a.alert_id, 33);
	ev = ack_ev(f, "s1", id, ACK_ACK, "op-1", T0 + MIN);
	apply(f, &ev);
	only(f, KIND_FEVER, "acked");
	assert_int_equal(f->out.t[0].a.state, ALERT_ACKED);
	assert_string_equal(f->out.t[0].a.by, "op-1");
	assert_true(f->out.t[0].a.updated_us == T0 + MIN);
	/* a second ack changes nothing */
	ev = ack_ev(f, "s1", id, ACK_ACK, "op-2", T0 + 2 * MIN);
	apply(f, &ev);
	none(f);
	assert_string_equal(f->out.reject_reason, "");
	/* an acked alert still counts its triggers and stays acked */
	ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 386, T0 + 3 * MIN);
	apply(f, &ev);
	assert_int_equal(only(f, KIND_FEVER, "updated")->a.state, ALERT_ACKED);
	ev = ack_ev(f, "s1", id, ACK_RESOLVE, "op-3", T0 + 4 * MIN);
	apply(f, &ev);
	only(f, KIND_FEVER, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "operator");
	assert_string_equal(f->out.t[0].a.by, "op-3");
	assert_int_equal(open_count(f), 0);
	/* resolved: a further ack is refused */
	ev = ack_ev(f, "s1", id, ACK_RESOLVE, "op-3", T0 + 5 * MIN);
	apply(f, &ev);
	none(f);
	assert_string_equal(f->out.reject_site, "s1");
	assert_non_null(strstr(f->out.reject_reason, "no open alert"));
}

static void
ack_unknown_or_other_site(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 386, T0);
	char id[33];

	apply(f, &ev);
	memcpy(id, f->out.t[0].a.alert_id, 33);
	ev = ack_ev(f, "s1", "0123456789abcdef0123456789abcdef", ACK_ACK, "op-1", T0);
	apply(f, &ev);
	none(f);
	assert_string_equal(f->out.reject_site, "s1");
	assert_non_null(strstr(f->out.reject_reason, "0123456789abcdef"));
	/* an alert of s1 cannot be acknowledged through s2's topic */
	ev = ack_ev(f, "s2", id, ACK_RESOLVE, "op-1", T0);
	apply(f, &ev);
	none(f);
	assert_string_equal(f->out.reject_site, "s2");
	assert_int_equal(open_count(f), 1);
	/* rules_output_clear forgets the reject */
	rules_output_clear(&f->out);
	assert_string_equal(f->out.reject_reason, "");
}

/* The open alerts of a site and kind in the iteration of
 * rules_open_next(); asserts there is one entry, or none when both are 0. */
static void
open_states(struct fx *f, const char *site, enum alert_kind kind, uint32_t raised, uint32_t acked)
{
	struct rules_open o;
	int found = 0;

	for (size_t it = 0; rules_open_next(f->r, &it, &o);)
		if (strcmp(o.site, site) == 0 && o.kind == kind) {
			found++;
			assert_int_equal(o.raised, raised);
			assert_int_equal(o.acked, acked);
		}
	assert_int_equal(found, raised || acked);
}

static bool
keep_s1(void *ctx, const char *site)
{
	(void)ctx;
	return strcmp(site, "s1") == 0;
}

/* cordon_alerts_open's counts follow raise, ack, resolve, the fold into an
 * aggregate (one alert) and the sites forgotten. */
static void
open_counts_by_state(void **state)
{
	struct fx *f = *state;
	char ids[3][33];
	uint64_t raised, acked;
	struct event ev;

	f->cfg.max_open_alerts = 2;
	set_config(f);
	for (int i = 0; i < 3; i++) {
		char p[16];

		snprintf(p, sizeof(p), "P-%d", i);
		ev = gate_ev(f, "s1", "G01", "", p, DIR_IN, 380, T0 + i * S);
		apply(f, &ev);
		memcpy(ids[i], f->out.t[0].a.alert_id, 33);
	}
	/* two alerts, and the third folded into the aggregate */
	open_states(f, "s1", KIND_FEVER, 3, 0);
	ev = gate_ev(f, "s2", "G01", "", "P-9", DIR_IN, 380, T0);
	apply(f, &ev);
	open_states(f, "s2", KIND_FEVER, 1, 0);
	ev = ack_ev(f, "s1", ids[0], ACK_ACK, "op-1", T0 + MIN);
	apply(f, &ev);
	open_states(f, "s1", KIND_FEVER, 2, 1);
	ev = ack_ev(f, "s1", ids[0], ACK_ACK, "op-2", T0 + MIN);
	apply(f, &ev);
	open_states(f, "s1", KIND_FEVER, 2, 1);
	rules_open_totals(f->r, &raised, &acked);
	assert_int_equal(raised, 3);
	assert_int_equal(acked, 1);
	/* the acked one resolved, then a raised one */
	ev = ack_ev(f, "s1", ids[0], ACK_RESOLVE, "op-1", T0 + 2 * MIN);
	apply(f, &ev);
	open_states(f, "s1", KIND_FEVER, 2, 0);
	ev = ack_ev(f, "s1", ids[1], ACK_RESOLVE, "op-1", T0 + 2 * MIN);
	apply(f, &ev);
	open_states(f, "s1", KIND_FEVER, 1, 0);
	assert_int_equal(open_count(f), 2);
	/* s2's forgotten (a shard lost): counted out */
	assert_true(rules_forget_sites(f->r, keep_s1, NULL) > 0);
	open_states(f, "s2", KIND_FEVER, 0, 0);
	rules_open_totals(f->r, &raised, &acked);
	assert_int_equal(raised, 1);
	assert_int_equal(acked, 0);
}

/* A site from PostgreSQL (alerts.site has no CHECK) reaches the counts as
 * it is, quote, backslash and line feed included: cordon_alerts_open must
 * escape it (metrics_put_label_value(), test_metrics_text.c). */
static void
open_counts_restored_odd_site(void **state)
{
	struct fx *f = *state;
	struct alert a;

	memset(&a, 0, sizeof(a));
	snprintf(a.alert_id, sizeof(a.alert_id), "0123456789abcdef0123456789abcdef");
	a.kind = KIND_FEVER;
	a.severity = SEVERITY_WARNING;
	a.state = ALERT_RAISED;
	snprintf(a.site, sizeof(a.site), "s\"1\\\n");
	snprintf(a.subject, sizeof(a.subject), "person:P-1");
	snprintf(a.event_key, sizeof(a.event_key), "x/G01/X");
	a.raised_us = a.updated_us = T0 - MIN;
	a.count = 1;
	assert_int_equal(restore_alert(f, &a), 0);
	open_states(f, "s\"1\\\n", KIND_FEVER, 1, 0);
}

static void
open_alerts_listed(void **state)
{
	struct fx *f = *state;
	const struct alert *a[4];

	for (int i = 0; i < 3; i++) {
		char p[16];
		struct event ev;

		snprintf(p, sizeof(p), "P-%d", i);
		ev = gate_ev(f, "s1", "G01", "", p, DIR_IN, 380, T0);
		apply(f, &ev);
	}
	assert_int_equal(rules_open_alerts(f->r, a, 4), 3);
	assert_int_equal(rules_open_alerts(f->r, a, 2), 2);
}

/* ---- gates ---- */

static void
sealed_gate_event_status_and_reseal(void **state)
{
	struct fx *f = *state;
	struct event ev;
	char id[33];

	add_gate(f->reg, "s1", "G09", 1, 1);
	add_gate(f->reg, "s1", "G01", 0, 1);
	ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);
	ev = status_ev(f, "s1", "G01", STATE_OPEN, T0);
	apply(f, &ev);
	none(f); /* an open gate may open */

	ev = gate_ev(f, "s1", "G09", "C-1", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	only(f, KIND_SEALED_GATE, "raised");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_CRITICAL);
	assert_string_equal(f->out.t[0].a.subject, "gate:G09");
	memcpy(id, f->out.t[0].a.alert_id, 33);
	ev = status_ev(f, "s1", "G09", STATE_ONLINE, T0 + S);
	apply(f, &ev);
	none(f);
	ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 2 * S);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_SEALED_GATE, "resolved")->a.alert_id, id);
	assert_string_equal(f->out.t[0].a.reason, "re-sealed");

	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0 + 3 * S);
	apply(f, &ev);
	only(f, KIND_SEALED_GATE, "raised");
	assert_string_equal(f->out.t[0].a.reason, "forced");
	assert_string_not_equal(f->out.t[0].a.alert_id, id);
	ev = status_ev(f, "s1", "G09", STATE_OPEN, T0 + 4 * S);
	apply(f, &ev);
	none(f); /* the same open alert, counted */
	assert_int_equal(open_count(f), 1);
	/* a fever at a sealed gate raises both */
	ev = gate_ev(f, "s1", "G09", "C-1", "P-1", DIR_IN, 390, T0 + 5 * S);
	apply(f, &ev);
	only(f, KIND_FEVER, "raised");
}

/* The transitions of `kind` in the output (any `what`). */
static size_t
count_kind(const struct fx *f, enum alert_kind kind, const char *what)
{
	size_t n = 0;

	for (size_t i = 0; i < f->out.n; i++)
		n += f->out.t[i].a.kind == kind && strcmp(f->out.t[i].what, what) == 0;
	return n;
}

/* A pass without a reading (temp_dc TEMP_NONE: a card reader, a terminal
 * whose thermal module is off, a refused card; issue 14.3) runs every gate
 * rule as a pass with a reading does: sealed_gate, unknown_card,
 * isolation_breach, exit_quota; it is never a fever and never the normal
 * re-check of one. Field case 03: an unknown card at a sealed gate raises
 * both sealed_gate and unknown_card. */
static void
gate_rules_without_reading(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;

	add_gate(f->reg, "s1", "G09", 1, 1);
	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-1", "3-2-401", 0);
	add_card(f->reg, "s1", "C-2", "3-2-401", 0);
	add_order(f->reg, "s1", "3-2-401", "", T0 - HOUR, T0 + 14 * 24 * HOUR, 0);

	/* field case 03: card C-9901 is not registered, the gate is sealed */
	ev = gate_ev(f, "s1", "G09", "C-9901", "", DIR_NONE, TEMP_NONE, T0);
	apply(f, &ev);
	assert_int_equal(f->out.n, 2);
	assert_int_equal(count_kind(f, KIND_SEALED_GATE, "raised"), 1);
	assert_int_equal(count_kind(f, KIND_UNKNOWN_CARD, "raised"), 1);
	for (size_t i = 0; i < f->out.n; i++) {
		t = &f->out.t[i];
		assert_string_equal(t->a.card, "C-9901");
		assert_string_equal(t->a.event_key, ev.key);
		assert_int_equal(t->a.temp_dc, TEMP_NONE);
		if (t->a.kind == KIND_UNKNOWN_CARD)
			assert_string_equal(t->a.subject, "card:C-9901");
		else
			assert_string_equal(t->a.subject, "gate:G09");
	}

	/* a registered card of a household in isolation going out; exit_quota
	 * counts passes without a reading */
	f->cfg.exit_quota = 1;
	f->cfg.exit_window_us = HOUR;
	set_config(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, TEMP_NONE, T0 + S);
	apply(f, &ev);
	t = only(f, KIND_ISOLATION_BREACH, "raised");
	assert_string_equal(t->a.subject, "household:3-2-401");
	assert_int_equal(t->a.temp_dc, TEMP_NONE);

	ev = gate_ev(f, "s1", "G02", "C-2", "", DIR_OUT, TEMP_NONE, T0 + 2 * S);
	apply(f, &ev);
	assert_int_equal(count_kind(f, KIND_EXIT_QUOTA, "raised"), 1);
	assert_int_equal(count_kind(f, KIND_ISOLATION_BREACH, "raised"), 0); /* open: counted */

	/* no fever from it, and no re-check of an open fever either */
	ev = gate_ev(f, "s1", "G01", "X-7", "P-7", DIR_IN, 386, T0 + 3 * S);
	apply(f, &ev);
	assert_int_equal(count_kind(f, KIND_FEVER, "raised"), 1);
	ev = gate_ev(f, "s1", "G01", "X-7", "P-7", DIR_IN, TEMP_NONE, T0 + 4 * S);
	apply(f, &ev);
	assert_int_equal(count_kind(f, KIND_FEVER, "resolved"), 0);
	assert_int_equal(count_kind(f, KIND_FEVER, "raised"), 0);
	ev = gate_ev(f, "s1", "G01", "X-7", "P-7", DIR_IN, 366, T0 + 5 * S);
	apply(f, &ev);
	assert_int_equal(count_kind(f, KIND_FEVER, "resolved"), 1);
}

static void
gate_silent_timer(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G05", 0, 1);
	add_gate(f->reg, "s1", "G06", 0, 0); /* inactive */
	add_gate(f->reg, "s1", "G07", 1, 1); /* sealed */
	tick(f, T0 + 5 * MIN);
	none(f);
	tick(f, T0 + 5 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	assert_string_equal(f->out.t[0].a.subject, "gate:G05");
	assert_string_equal(f->out.t[0].a.gate, "G05");
	tick(f, T0 + 10 * MIN);
	none(f); /* one open alert per gate */
	ev = status_ev(f, "s1", "G05", STATE_ONLINE, T0 + 11 * MIN);
	apply(f, &ev);
	only(f, KIND_GATE_SILENT, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "message received");
	tick(f, T0 + 16 * MIN);
	none(f);
	tick(f, T0 + 16 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	/* a gate event is a message too */
	ev = gate_ev(f, "s1", "G05", "", "", DIR_IN, 365, T0 + 17 * MIN);
	apply(f, &ev);
	only(f, KIND_GATE_SILENT, "resolved");
}

static void
unknown_and_revoked_cards(void **state)
{
	struct fx *f = *state;
	struct event ev;

	/* a site without registered cards: nothing is unknown */
	ev = gate_ev(f, "s1", "G01", "X-1", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);

	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-0412", "3-2-401", 0);
	add_card(f->reg, "s1", "C-0413", "3-2-401", 1);
	ev = gate_ev(f, "s1", "G01", "C-0412", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G01", "X-1", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	only(f, KIND_UNKNOWN_CARD, "raised");
	assert_string_equal(f->out.t[0].a.subject, "card:X-1");
	assert_string_equal(f->out.t[0].a.reason, "unregistered");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_WARNING);
	ev = gate_ev(f, "s1", "G01", "C-0413", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	only(f, KIND_UNKNOWN_CARD, "raised");
	assert_string_equal(f->out.t[0].a.reason, "revoked");
	/* no card at all is not an unknown card */
	ev = gate_ev(f, "s1", "G01", "", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);
	/* another site's cards do not count */
	ev = gate_ev(f, "s2", "G01", "X-1", "P-1", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);
}

static void
isolation_breach_outward_only(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_household(f->reg, "s1", "3-2-402");
	add_card(f->reg, "s1", "C-1", "3-2-401", 0);
	add_card(f->reg, "s1", "C-2", "3-2-402", 0);
	add_order(f->reg, "s1", "3-2-401", "", T0 - HOUR, T0 + 14 * 24 * HOUR, 0);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_IN, 365, T0);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G01", "C-2", "", DIR_OUT, 365, T0);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0);
	apply(f, &ev);
	only(f, KIND_ISOLATION_BREACH, "raised");
	assert_string_equal(f->out.t[0].a.subject, "household:3-2-401");
	assert_string_equal(f->out.t[0].a.card, "C-1");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_CRITICAL);
	/* after the order's end: no breach */
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + 15 * 24 * HOUR);
	apply(f, &ev);
	none(f);
}

static void
exit_quota_window(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-1", "3-2-401", 0);
	add_card(f->reg, "s1", "C-2", "3-2-401", 0);
	/* off by default */
	for (int i = 0; i < 3; i++) {
		ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + i * S);
		apply(f, &ev);
		none(f);
	}
	f->cfg.exit_quota = 1;
	f->cfg.exit_window_us = 5 * S;
	set_config(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + 100 * S);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_IN, 365, T0 + 101 * S);
	apply(f, &ev);
	none(f);
	ev = gate_ev(f, "s1", "G02", "C-2", "", DIR_OUT, 365, T0 + 102 * S); /* same household */
	apply(f, &ev);
	only(f, KIND_EXIT_QUOTA, "raised");
	assert_string_equal(f->out.t[0].a.subject, "household:3-2-401");
	assert_string_equal(f->out.t[0].a.event_key, ev.key);
	tick(f, T0 + 104 * S);
	none(f);
	tick(f, T0 + 105 * S); /* the first pass left the window */
	only(f, KIND_EXIT_QUOTA, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "window ended");
}

/* exit_quota: an exception card's (extra: a carer's) passes do not count
 * against its household's quota; the ordinary card's do. */
static void
exit_quota_carer_exception(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	assert_int_equal(registry_snapshot_add_card(f->reg, "s1", "C-1", "3-2-401", 0, 0), 0);
	assert_int_equal(registry_snapshot_add_card(f->reg, "s1", "C-2", "3-2-401", 0, 1), 0);
	f->cfg.exit_quota = 1;
	f->cfg.exit_window_us = HOUR;
	set_config(f);
	for (int i = 0; i < 5; i++) { /* the carer goes out five times */
		ev = gate_ev(f, "s1", "G01", "C-2", "", DIR_OUT, 365, T0 + i * MIN);
		apply(f, &ev);
		none(f);
	}
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + 10 * MIN);
	apply(f, &ev);
	none(f); /* the household's first counted pass */
	ev = gate_ev(f, "s1", "G01", "C-2", "", DIR_OUT, 365, T0 + 11 * MIN);
	apply(f, &ev);
	none(f); /* over the quota only with the carer's passes: nothing */
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + 12 * MIN);
	apply(f, &ev);
	only(f, KIND_EXIT_QUOTA, "raised");
	assert_string_equal(f->out.t[0].a.card, "C-1");
	assert_string_equal(f->out.t[0].a.household, "3-2-401");
}

/* ---- card_exception: the register's ordinary cards ---- */

/* A fresh register at s1: households 3-2-401 and 3-2-402, and the cards
 * "HH/ID" given: "HH/ID" ordinary, "HH/ID+" extra, "HH/ID-" revoked. */
static void
register_cards(struct fx *f, const char *const *cards)
{
	registry_snapshot_free(f->reg);
	f->reg = registry_snapshot_empty("Asia/Shanghai");
	assert_non_null(f->reg);
	add_household(f->reg, "s1", "3-2-401");
	add_household(f->reg, "s1", "3-2-402");
	for (; *cards; cards++) {
		char hh[16], id[16];
		size_t len;
		int revoked, extra;

		assert_int_equal(sscanf(*cards, "%15[^/]/%15s", hh, id), 2);
		len = strlen(id);
		revoked = id[len - 1] == '-';
		extra = id[len - 1] == '+';
		if (revoked || extra)
			id[len - 1] = '\0';
		assert_int_equal(registry_snapshot_add_card(f->reg, "s1", id, hh, revoked, extra),
				 0);
	}
}

/* rules_register on the register in use, the wall clock at `wall`. */
static void
judge(struct fx *f, int64_t wall)
{
	struct rules_clock now = clk(f, wall);

	rules_output_clear(&f->out);
	assert_int_equal(rules_register(f->r, f->reg, &now, &f->out), 0);
}

/* Raised once for a situation; an operator's resolve ends it; a changed
 * set raises again; a corrected register resolves; the same set coming
 * back after a correction is a new alert. Extra and revoked cards do not
 * count. */
static void
card_exception_once(void **state)
{
	struct fx *f = *state;
	const char *two[] = { "3-2-401/C-0412",	 "3-2-401/C-0413", "3-2-401/C-0414+",
			      "3-2-401/C-0415-", "3-2-402/C-0500", NULL };
	const char *three[] = { "3-2-401/C-0412", "3-2-401/C-0413", "3-2-401/C-0416", NULL };
	const char *swapped[] = { "3-2-401/C-0412", "3-2-401/C-0413", "3-2-401/C-0417", NULL };
	const char *fixed[] = { "3-2-401/C-0412", "3-2-401/C-0413+", NULL };
	char first[33], second[33], third[33];
	struct event ev;
	const struct alert *a;

	f->cfg.cards_per_household = 1;
	set_config(f);
	register_cards(f, two);
	judge(f, T0);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	assert_string_equal(a->subject, "household:3-2-401");
	assert_string_equal(a->household, "3-2-401");
	assert_int_equal(a->severity, SEVERITY_WARNING);
	assert_int_equal(strncmp(a->event_key, "cards:", 6), 0);
	assert_int_equal(a->raised_us, T0);
	assert_string_equal(a->sample, "2 1 C-0412 C-0413"); /* the text's (alerts.c) */
	snprintf(first, sizeof(first), "%s", a->alert_id);
	judge(f, T0 + MIN); /* the next register snapshot, the same cards */
	none(f);
	ev = ack_ev(f, "s1", first, ACK_ACK, "op-1", T0 + 2 * MIN);
	apply(f, &ev);
	only(f, KIND_CARD_EXCEPTION, "acked");
	judge(f, T0 + 3 * MIN);
	none(f);
	ev = ack_ev(f, "s1", first, ACK_RESOLVE, "op-1", T0 + 4 * MIN);
	apply(f, &ev);
	only(f, KIND_CARD_EXCEPTION, "resolved");
	judge(f, T0 + 5 * MIN); /* resolved by an operator: not again */
	none(f);
	assert_int_equal(open_count(f), 0);

	register_cards(f, three); /* a third ordinary card: a new situation */
	judge(f, T0 + 6 * MIN);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	assert_string_equal(a->sample, "3 1 C-0412 C-0413 C-0416");
	assert_string_not_equal(a->alert_id, first);
	snprintf(second, sizeof(second), "%s", a->alert_id);

	register_cards(f, swapped); /* one card for another, the alert open */
	judge(f, T0 + 7 * MIN);
	assert_int_equal(f->out.n, 2);
	assert_string_equal(f->out.t[0].what, "resolved");
	assert_string_equal(f->out.t[0].a.alert_id, second);
	assert_string_equal(f->out.t[0].a.reason, "register changed");
	assert_string_equal(f->out.t[1].what, "raised");
	assert_string_not_equal(f->out.t[1].a.alert_id, second);
	snprintf(third, sizeof(third), "%s", f->out.t[1].a.alert_id);

	register_cards(f, fixed); /* the second card marked extra */
	judge(f, T0 + 8 * MIN);
	a = &only(f, KIND_CARD_EXCEPTION, "resolved")->a;
	assert_string_equal(a->alert_id, third);
	assert_string_equal(a->reason, "register corrected");
	judge(f, T0 + 9 * MIN);
	none(f);

	register_cards(f, two); /* the first set back after a correction */
	judge(f, T0 + 10 * MIN);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	assert_string_not_equal(a->alert_id, first); /* its row is resolved: an id of its own */
	assert_string_not_equal(a->alert_id, third);
}

/* The id is the situation's: another engine (a restart) with the same
 * register raises the same id; the household's latest alert restored
 * (rules_restore_seen) is not raised again when an operator resolved it,
 * and is when it was over (corrected) before the restart. */
static void
card_exception_across_restart(void **state)
{
	struct fx *f = *state;
	const char *two[] = { "3-2-401/C-0412", "3-2-401/C-0413", NULL };
	char sub[NORM_STORED_KEY_MAX + 64], id[33], ek[NORM_STORED_KEY_MAX];
	struct rules_clock now = clk(f, T0 + HOUR);
	struct rules *again;
	const struct alert *a;

	f->cfg.cards_per_household = 1;
	set_config(f);
	register_cards(f, two);
	judge(f, T0);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	snprintf(id, sizeof(id), "%s", a->alert_id);
	snprintf(ek, sizeof(ek), "%s", a->event_key);

	/* a crash before the alert was stored: the next engine, the same id */
	assert_int_equal(rules_create(&f->cfg, &now, &again), 0);
	rules_output_clear(&f->out);
	assert_int_equal(rules_register(again, f->reg, &now, &f->out), 0);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	assert_string_equal(a->alert_id, id);
	assert_int_equal(a->raised_us, T0 + HOUR);
	rules_destroy(again);

	/* resolved by an operator before the restart: the row read back */
	rules_destroy(f->r);
	assert_int_equal(rules_create(&f->cfg, &now, &f->r), 0);
	snprintf(sub, sizeof(sub), "%s %s 0", id, ek);
	restore_seen(f, "card_exception", "s1", "3-2-401", sub, T0, T0 + HOUR);
	judge(f, T0 + HOUR);
	none(f);
	/* a household not in the register is not kept */
	assert_int_equal(
		restore_seen_in(f->r, f->reg, "card_exception", "s1", "9-9-999", sub, T0, now), 1);

	/* corrected before the restart, back now: raised, with an id of its own */
	rules_destroy(f->r);
	assert_int_equal(rules_create(&f->cfg, &now, &f->r), 0);
	snprintf(sub, sizeof(sub), "%s %s 1", id, ek);
	restore_seen(f, "card_exception", "s1", "3-2-401", sub, T0, T0 + HOUR);
	judge(f, T0 + HOUR);
	a = &only(f, KIND_CARD_EXCEPTION, "raised")->a;
	assert_string_not_equal(a->alert_id, id);
	assert_string_equal(a->event_key, ek);
}

/* [rules] cards_per_household: the threshold, 0 = off (open alerts
 * resolved "check off"); past max_open_alerts households fold, once. */
static void
card_exception_threshold_and_fold(void **state)
{
	struct fx *f = *state;
	const char *cards[] = { "3-2-401/C-1", "3-2-401/C-2", "3-2-401/C-3",
				"3-2-402/C-4", "3-2-402/C-5", NULL };
	const char *less[] = { "3-2-401/C-1", NULL };

	register_cards(f, cards);
	f->cfg.cards_per_household = 3;
	set_config(f);
	judge(f, T0);
	none(f);			/* 3 and 2 ordinary cards, 3 allowed */
	f->cfg.cards_per_household = 2; /* a SIGHUP */
	set_config(f);
	judge(f, T0 + MIN);
	assert_string_equal(only(f, KIND_CARD_EXCEPTION, "raised")->a.subject, "household:3-2-401");
	f->cfg.cards_per_household = 0;
	set_config(f);
	judge(f, T0 + 2 * MIN);
	assert_string_equal(only(f, KIND_CARD_EXCEPTION, "resolved")->a.reason, "check off");
	judge(f, T0 + 3 * MIN);
	none(f);

	f->cfg.cards_per_household = 1;
	f->cfg.max_open_alerts = 1;
	set_config(f);
	judge(f, T0 + 4 * MIN);
	assert_int_equal(f->out.n, 2); /* one household's own alert, the other folded */
	assert_string_equal(f->out.t[0].what, "raised");
	assert_string_equal(f->out.t[1].what, "raised");
	assert_string_equal(f->out.t[1].a.subject, ALERT_AGGREGATE);
	assert_int_equal(f->out.t[1].a.distinct, 1);
	judge(f, T0 + 5 * MIN);
	none(f); /* the folded household is not folded again */

	/* bounded: a household gone from the register is forgotten */
	assert_true(rules_entries(f->r) > 0);
	register_cards(f, less);
	judge(f, T0 + 6 * MIN);
	assert_int_equal(f->out.n, 1); /* the open household alert corrected */
	assert_string_equal(f->out.t[0].a.reason, "register corrected");
	rules_destroy(f->r);
	{
		struct rules_clock now = clk(f, T0);

		assert_int_equal(rules_create(&f->cfg, &now, &f->r), 0);
	}
	register_cards(f, cards);
	judge(f, T0);
	assert_int_equal(f->out.n, 2);
	registry_snapshot_free(f->reg);
	f->reg = registry_snapshot_empty("Asia/Shanghai");
	judge(f, T0 + MIN); /* the households are gone */
	/* the aggregate, in alerts, by_id and the count by state */
	assert_int_equal(rules_entries(f->r), 3);
}

/* ---- isolation ---- */

static void
isolation_overdue_and_checked_in(void **state)
{
	struct fx *f = *state;
	struct event ev;
	char id[33];

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "P-7", T0, T0 + 24 * HOUR, 3);
	f->cfg.check_grace_us = S;
	set_config(f);
	tick(f, T0 + 4 * S);
	none(f);
	tick(f, T0 + 4 * S + 1);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	assert_string_equal(f->out.t[0].a.subject, "person:P-7");
	assert_string_equal(f->out.t[0].a.household, "3-2-401");
	memcpy(id, f->out.t[0].a.alert_id, 33);
	tick(f, T0 + 20 * S);
	none(f);
	/* another person's check does not count */
	ev = check_ev(f, "s1", "3-2-401", "P-8", 365, "", T0 + 21 * S);
	apply(f, &ev);
	none(f);
	ev = check_ev(f, "s1", "3-2-401", "P-7", 365, "", T0 + 22 * S);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_ISOLATION_OVERDUE, "resolved")->a.alert_id, id);
	assert_string_equal(f->out.t[0].a.reason, "checked in");
	/* the clock starts again from the check */
	tick(f, T0 + 26 * S);
	none(f);
	tick(f, T0 + 26 * S + 1);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	assert_string_not_equal(f->out.t[0].a.alert_id, id);
}

static void
isolation_overdue_household_and_default_interval(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0, T0 + 14 * 24 * HOUR, 0);
	f->cfg.call_deadline_s = 22 * 3600; /* its welfare call not due at 21:00 */
	set_config(f);
	tick(f, T0 + 13 * HOUR);
	none(f);
	tick(f, T0 + 13 * HOUR + 1);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	assert_string_equal(f->out.t[0].a.subject, "household:3-2-401");
	/* any member's check counts for a household order */
	ev = check_ev(f, "s1", "3-2-401", "P-1", 366, "", T0 + 14 * HOUR);
	apply(f, &ev);
	only(f, KIND_ISOLATION_OVERDUE, "resolved");
}

/* Checks that arrive after the overdue alert they predate (a bridge's
 * backlog, a phone that was offline): one that leaves the order overdue
 * all the same changes nothing, as in time order (before, it resolved the
 * alert and the next tick raised it again); one that would have kept the
 * order from being overdue resolves it; one dated after the raise
 * resolves it as always. */
static void
isolation_late_checks(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "P-7", T0 - 24 * HOUR, T0 + 24 * HOUR, 3600);
	ev = check_ev(f, "s1", "3-2-401", "P-7", 366, "", T0);
	apply(f, &ev);
	tick(f, T0 + 2 * HOUR + S); /* due at T0 + 1 h, overdue after the 1 h grace */
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	/* a very old check, 10 minutes before the last one */
	ev = check_ev(f, "s1", "3-2-401", "P-7", 366, "", T0 - 10 * MIN);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR + 2 * S));
	none(f);
	tick(f, T0 + 2 * HOUR + 3 * S);
	none(f);
	assert_int_equal(open_count(f), 1);
	/* a check after the last one, before the raise, that still leaves it
	 * overdue (due T0 + 2:10): the same */
	ev = check_ev(f, "s1", "3-2-401", "P-7", 366, "", T0 + 10 * MIN);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR + 20 * MIN));
	none(f);
	/* one that would have kept it from being overdue till T0 + 2:50 */
	ev = check_ev(f, "s1", "3-2-401", "P-7", 366, "", T0 + 50 * MIN);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR + 21 * MIN));
	only(f, KIND_ISOLATION_OVERDUE, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "checked in");
	tick(f, T0 + 2 * HOUR + 50 * MIN);
	none(f);
	tick(f, T0 + 2 * HOUR + 50 * MIN + S);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	/* dated after the raise: resolves */
	ev = check_ev(f, "s1", "3-2-401", "P-7", 366, "", T0 + 2 * HOUR + 51 * MIN);
	apply(f, &ev);
	only(f, KIND_ISOLATION_OVERDUE, "resolved");
}

static void
isolation_symptoms(void **state)
{
	struct fx *f = *state;
	struct event ev = check_ev(f, "s1", "3-2-401", "P-7", TEMP_NONE, "cough,fatigue", T0);

	apply(f, &ev);
	only(f, KIND_ISOLATION_SYMPTOM, "raised");
	assert_string_equal(f->out.t[0].a.subject, "person:P-7");
	assert_string_equal(f->out.t[0].a.reason, "cough,fatigue");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_WARNING);
	/* without a person: the household */
	ev = check_ev(f, "s1", "3-2-402", "", TEMP_NONE, "cough", T0);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_ISOLATION_SYMPTOM, "raised")->a.subject,
			    "household:3-2-402");
	/* symptoms and a fever: two alerts */
	ev = check_ev(f, "s1", "3-2-403", "P-9", 390, "cough", T0);
	apply(f, &ev);
	assert_int_equal(f->out.n, 2);
	/* a normal check does not resolve symptoms (an operator does) */
	ev = check_ev(f, "s1", "3-2-401", "P-7", 365, "", T0 + MIN);
	apply(f, &ev);
	none(f);
}

/* ---- disinfection ---- */

static void
daytime_elapsed(void **state)
{
	struct tz *tz;
	int64_t t0 = T0 / S; /* 08:00 local */

	(void)state;
	assert_int_equal(tz_load("Asia/Shanghai", &tz), 0);
	assert_int_equal(rules_daytime_elapsed(tz, t0, t0 + 3600), 3600);
	/* 05:00 -> 07:00 local: one hour of day */
	assert_int_equal(rules_daytime_elapsed(tz, t0 - 3 * 3600, t0 - 3600), 3600);
	/* 21:00 -> 07:00 next day: 1 h + 1 h */
	assert_int_equal(rules_daytime_elapsed(tz, t0 + 13 * 3600, t0 + 23 * 3600), 7200);
	/* a whole day: 16 h */
	assert_int_equal(rules_daytime_elapsed(tz, t0, t0 + 86400), 16 * 3600);
	/* night only */
	assert_int_equal(rules_daytime_elapsed(tz, t0 + 15 * 3600, t0 + 21 * 3600), 0);
	assert_int_equal(rules_daytime_elapsed(tz, t0 + 10, t0), 0);
	tz_free(tz);
	/* a zone with DST: New York, 2020-03-08 (23 h day), 00:00 -> 24:00 local */
	assert_int_equal(tz_load("America/New_York", &tz), 0);
	assert_int_equal(rules_daytime_elapsed(tz, 1583643600, 1583643600 + 23 * 3600), 16 * 3600);
	tz_free(tz);
}

static void
disinfection_overdue_daytime(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_site(f->reg, "s1", "Asia/Shanghai");
	add_zone(f->reg, "s1", "Z01", 2 * 3600);
	/* engine started at 08:00 local: due at 10:00 */
	tick(f, T0 + 2 * HOUR);
	none(f);
	tick(f, T0 + 2 * HOUR + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
	assert_string_equal(f->out.t[0].a.subject, "zone:Z01");
	assert_string_equal(f->out.t[0].a.zone, "Z01");
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0 + 3 * HOUR);
	snprintf(ev.zone, sizeof(ev.zone), "Z01");
	apply(f, &ev);
	only(f, KIND_DISINFECTION_OVERDUE, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "disinfected");

	/* disinfected at 21:00 local: the night does not count, due at 07:00 */
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0 + 13 * HOUR);
	snprintf(ev.zone, sizeof(ev.zone), "Z01");
	apply(f, &ev);
	none(f);
	tick(f, T0 + 22 * HOUR); /* 06:00 next day */
	none(f);
	tick(f, T0 + 23 * HOUR); /* 07:00 */
	none(f);
	tick(f, T0 + 23 * HOUR + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
}

/* G3: a disinfection known from before the start (restored from
 * PostgreSQL) keeps counting; the interval does not begin again at the
 * start. A message with an older device time counts from that time. */
static void
disinfection_known_before_start(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_site(f->reg, "s1", "Asia/Shanghai");
	add_zone(f->reg, "s1", "Z01", 2 * 3600);
	add_zone(f->reg, "s1", "Z02", 2 * 3600);
	/* Z01 disinfected at 07:00 local, engine started at 08:00: due at 09:00 */
	restore_seen(f, "zone", "s1", "Z01", "", T0 - HOUR, T0);
	tick(f, T0 + HOUR);
	none(f);
	tick(f, T0 + HOUR + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
	assert_string_equal(f->out.t[0].a.zone, "Z01");
	/* Z02: a message at 09:30 says it was done at 08:15: due at 10:15 */
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0 + 15 * MIN);
	snprintf(ev.zone, sizeof(ev.zone), "Z02");
	apply(f, &ev);
	none(f);
	tick(f, T0 + 2 * HOUR + 15 * MIN);
	none(f);
	tick(f, T0 + 2 * HOUR + 15 * MIN + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
	assert_string_equal(f->out.t[0].a.zone, "Z02");
}

static void
disinfection_site_zone_and_default_interval(void **state)
{
	struct fx *f = *state;

	/* a site in UTC: 08:00 Shanghai is 00:00 UTC, night until 06:00 */
	add_site(f->reg, "s1", "UTC");
	add_zone(f->reg, "s1", "Z01", 0); /* 0: the configured default (4 h) */
	tick(f, T0 + 6 * HOUR);
	none(f);
	tick(f, T0 + 10 * HOUR);
	none(f);
	tick(f, T0 + 10 * HOUR + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
}

/* ---- hotline ---- */

static void
hotline_limits(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = hotline_ev(f, "s1", "H-7", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	none(f);
	ev = hotline_ev(f, "s1", "H-8", CALL_OPEN, "supplies", 1, T0);
	apply(f, &ev);
	ev = hotline_ev(f, "s1", "H-9", CALL_OPEN, "medical", 0, T0); /* not urgent */
	apply(f, &ev);
	tick(f, T0 + 30 * MIN);
	none(f);
	tick(f, T0 + 30 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
	assert_string_equal(f->out.t[0].a.subject, "call:H-7");
	assert_string_equal(f->out.t[0].a.call_id, "H-7");
	assert_string_equal(f->out.t[0].a.household, "3-2-401");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_CRITICAL);
	tick(f, T0 + 4 * HOUR + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
	assert_string_equal(f->out.t[0].a.subject, "call:H-8");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_WARNING);
	ev = hotline_ev(f, "s1", "H-7", CALL_RESOLVE, "", -1, T0 + 5 * HOUR);
	apply(f, &ev);
	only(f, KIND_HOTLINE_UNRESOLVED, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "call resolved");
	tick(f, T0 + 6 * HOUR);
	none(f); /* H-8 still open, not raised twice; H-7 gone */
	tick(f, T0 + 30 * HOUR);
	none(f);
}

static void
hotline_resolved_before_limit(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = hotline_ev(f, "s1", "H-1", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	ev = hotline_ev(f, "s1", "H-1", CALL_RESOLVE, "", -1, T0 + MIN);
	apply(f, &ev);
	none(f);
	tick(f, T0 + 5 * HOUR);
	none(f);
	/* steps out of order: an update before the open still counts from the open */
	ev = hotline_ev(f, "s1", "H-2", CALL_UPDATE, "medical", 1, T0 + 10 * MIN);
	apply(f, &ev);
	ev = hotline_ev(f, "s1", "H-2", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	tick(f, T0 + 30 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
}

/* Field case 16: the resolve arrives before the open (brokers and bridges
 * reorder). The call is resolved: the late open neither opens nor alerts;
 * nor does a late update, and a restored open row of it is not followed. */
static void
hotline_resolve_before_open(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = hotline_ev(f, "s1", "H-16", CALL_RESOLVE, "", -1, T0 + 20 * MIN);
	apply(f, &ev);
	none(f);
	ev = hotline_ev(f, "s1", "H-16", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	none(f);
	ev = hotline_ev(f, "s1", "H-16", CALL_UPDATE, "medical", 1, T0 + 5 * MIN);
	apply(f, &ev);
	none(f);
	tick(f, T0 + 5 * HOUR);
	none(f);
	/* restored at start: resolved (either order of the two rows) */
	restore_seen(f, "call_resolved", "s1", "H-17", "", T0 + MIN, T0 + 2 * MIN);
	restore_seen(f, "call", "s1", "H-17", "medical", T0, T0 + 2 * MIN);
	restore_seen(f, "call", "s1", "H-18", "medical", T0, T0 + 2 * MIN);
	restore_seen(f, "call_resolved", "s1", "H-18", "", T0 + MIN, T0 + 2 * MIN);
	ev = hotline_ev(f, "s1", "H-17", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	tick(f, T0 + 6 * HOUR);
	none(f);
	/* the same call id on another site is another call */
	ev = hotline_ev(f, "s2", "H-16", CALL_OPEN, "medical", 1, T0 + 6 * HOUR);
	apply(f, &ev);
	tick(f, T0 + 6 * HOUR + 30 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
	assert_string_equal(f->out.t[0].a.site, "s2");
}

/* The steps of several calls, in every order: the same alerts at the same
 * ticks. Steps carry their own times and are all processed at TP (after
 * the last of them); the alert state is read at ticks after TP. */
#define TP (T0 + 25 * MIN)
#define NSTEP 10

struct step {
	const char *call;
	enum call_action action;
	const char *category, *household;
	int urgent;
	int64_t at;
};

static const struct step steps[NSTEP] = {
	/* resolved: open, update, resolve */
	{ "A", CALL_OPEN, "medical", "1-1-101", 1, T0 },
	{ "A", CALL_UPDATE, "", "", -1, T0 + 5 * MIN },
	{ "A", CALL_RESOLVE, "", "", -1, T0 + 10 * MIN },
	/* resolved, as in field case 16 */
	{ "B", CALL_OPEN, "other", "1-1-102", 1, T0 + MIN },
	{ "B", CALL_RESOLVE, "", "", -1, T0 + 20 * MIN },
	/* open; the category changes to medical (the later step wins) */
	{ "C", CALL_OPEN, "other", "1-1-103", 1, T0 + 2 * MIN },
	{ "C", CALL_UPDATE, "medical", "1-1-113", 1, T0 + 8 * MIN },
	/* open; an update dated before its open, not urgent itself */
	{ "D", CALL_UPDATE, "medical", "", 0, T0 + 3 * MIN },
	{ "D", CALL_OPEN, "medical", "1-1-104", 1, T0 + 12 * MIN },
	/* not urgent: never followed */
	{ "E", CALL_OPEN, "medical", "1-1-105", 0, T0 },
};

/* The transitions of ticks at fixed times, as one string. */
static void
run_steps(const int *order, int n, char *out, size_t outlen)
{
	static const int64_t ticks[] = { T0 + 30 * MIN, T0 + 31 * MIN, T0 + 38 * MIN, T0 + 43 * MIN,
					 T0 + 5 * HOUR };
	struct fx *f;
	size_t len = 0;

	out[0] = '\0';
	setup((void **)&f);
	for (int i = 0; i < n; i++) {
		const struct step *s = &steps[order[i]];
		struct event ev =
			hotline_ev(f, "s1", s->call, s->action, s->category, s->urgent, s->at);

		snprintf(ev.household, sizeof(ev.household), "%s", s->household);
		apply_at(f, &ev, clk(f, TP));
		assert_int_equal(f->out.n, 0);
	}
	for (size_t k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
		tick(f, ticks[k]);
		for (size_t i = 0; i < f->out.n; i++) {
			const struct alert *a = &f->out.t[i].a;

			len += (size_t)snprintf(out + len, outlen - len, "%zu %s %s %d %s;", k,
						f->out.t[i].what, a->subject, (int)a->severity,
						a->household);
			assert_true(len < outlen);
		}
	}
	teardown((void **)&f);
}

static uint64_t
rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The resolved calls remembered (10,000: rules.c RULES_RESOLVED_MAX): past
 * the bound the call resolved earliest (by rule time) is forgotten, and a
 * resolve older than all kept is not remembered, whatever order the
 * resolves come in (repeats keep the latest time). Checked against a model
 * that scans as remember_resolved once did: a call is followed again
 * exactly when the model has forgotten it. */
#define RESOLVED_MAX 10000
#define RESOLVED_CALLS (RESOLVED_MAX + 700)
#define RESOLVED_OPS (RESOLVED_CALLS + 2000)

static void
hotline_resolved_bound(void **state)
{
	struct fx *f = *state;
	static int64_t kept[RESOLVED_CALLS]; /* model: resolve time, 0 = not kept */
	static int perm[RESOLVED_OPS];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t nkept = 0, expect = 0, raised = 0;
	struct event ev;
	char id[32];

	memset(kept, 0, sizeof(kept));
	for (int i = 0; i < RESOLVED_OPS; i++)
		perm[i] = i;
	for (int i = RESOLVED_OPS - 1; i > 0; i--) {
		int j = (int)(rng_next(&seed) % (uint64_t)(i + 1)), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int op = 0; op < RESOLVED_OPS; op++) {
		/* every call once, then repeats of random ones; distinct times */
		int call = op < RESOLVED_CALLS ? op : (int)(rng_next(&seed) % RESOLVED_CALLS);
		int64_t at = T0 - HOUR - (int64_t)perm[op] * S;

		snprintf(id, sizeof(id), "H-%d", call);
		ev = hotline_ev(f, "s1", id, CALL_RESOLVE, "", -1, at);
		apply_at(f, &ev, clk(f, T0));
		if (kept[call]) {
			if (at > kept[call])
				kept[call] = at;
			continue;
		}
		if (nkept == RESOLVED_MAX) {
			int oldest = -1;

			for (int c = 0; c < RESOLVED_CALLS; c++)
				if (kept[c] && (oldest < 0 || kept[c] < kept[oldest]))
					oldest = c;
			if (oldest < 0) {
				fail_msg("the model holds %d calls and found none", nkept);
				break;
			}
			if (kept[oldest] > at)
				continue;
			kept[oldest] = 0;
			nkept--;
		}
		kept[call] = at;
		nkept++;
	}
	for (int c = 0; c < RESOLVED_CALLS; c++) {
		snprintf(id, sizeof(id), "H-%d", c);
		ev = hotline_ev(f, "s1", id, CALL_OPEN, "medical", 1, T0);
		apply_at(f, &ev, clk(f, T0));
		expect += kept[c] == 0;
	}
	tick(f, T0 + HOUR);
	for (size_t i = 0; i < f->out.n; i++) {
		const struct alert *a = &f->out.t[i].a;
		int c;

		if (a->kind != KIND_HOTLINE_UNRESOLVED)
			continue;
		assert_int_equal(sscanf(a->subject, "call:H-%d", &c), 1);
		if (kept[c])
			fail_msg("call H-%d followed, but its resolve is remembered", c);
		raised++;
	}
	assert_int_equal(expect, RESOLVED_CALLS - RESOLVED_MAX);
	assert_int_equal(raised, expect);
}

static bool
next_permutation(int *a, int n)
{
	int i = n - 2, j = n - 1;

	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	while (a[j] <= a[i])
		j--;
	{
		int t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
	for (int l = i + 1, r = n - 1; l < r; l++, r--) {
		int t = a[l];

		a[l] = a[r];
		a[r] = t;
	}
	return true;
}

static void
hotline_steps_in_any_order(void **state)
{
	char want[1024], got[1024];
	int order[NSTEP];
	uint64_t seed = 0x9e3779b97f4a7c15u;
	long nperm = 0;

	(void)state;
	for (int i = 0; i < NSTEP; i++)
		order[i] = i;
	run_steps(order, NSTEP, want, sizeof(want));
	/* in order: C raised (medical, 30 min from T0+2) at 38 min, D at 43 min */
	assert_string_equal(want, "2 raised call:C 2 1-1-113;3 raised call:D 2 1-1-104;");
	/* every order of the first eight steps (40,320): D's open and E last */
	do {
		run_steps(order, NSTEP, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			for (int i = 0; i < NSTEP; i++)
				print_message("%d ", order[i]);
			fail_msg("order above gives %s, want %s", got, want);
		}
		nperm++;
	} while (next_permutation(order, NSTEP - 2));
	assert_int_equal(nperm, 40320);
	/* 2,000 shuffles of all ten (Fisher-Yates, fixed seed) */
	for (int round = 0; round < 2000; round++) {
		for (int i = NSTEP - 1; i > 0; i--) {
			int j = (int)(rng_next(&seed) % (uint64_t)(i + 1)), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		run_steps(order, NSTEP, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			for (int i = 0; i < NSTEP; i++)
				print_message("%d ", order[i]);
			fail_msg("shuffle above gives %s, want %s", got, want);
		}
	}
}

/* A sealed gate's state is that of its latest message by time, whatever
 * order they arrive in: a forced dated before the re-seal that came first
 * is raised and resolved at once (the operator sees it happened); a
 * re-seal dated before a breach that came first resolves nothing. */
static void
sealed_gate_states_out_of_order(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G09", 1, 1);
	ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 2 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	none(f);
	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0 + S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	assert_int_equal(f->out.n, 2);
	assert_string_equal(f->out.t[0].what, "raised");
	assert_string_equal(f->out.t[1].what, "resolved");
	assert_string_equal(f->out.t[1].a.reason, "re-sealed");
	assert_true(f->out.t[1].a.resolved_us == T0 + 2 * S);
	assert_int_equal(open_count(f), 0);
	/* a pass dated before the re-seal: the same */
	ev = gate_ev(f, "s1", "G09", "C-1", "P-1", DIR_IN, 365, T0 + S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	assert_int_equal(f->out.n, 2);
	assert_int_equal(open_count(f), 0);
	/* forced after the re-seal, then a re-seal dated between: stays open */
	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0 + 10 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	only(f, KIND_SEALED_GATE, "raised");
	ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 5 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	none(f);
	ev = status_ev(f, "s1", "G09", STATE_OPEN, T0 + 4 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	none(f); /* older than the open alert's breach, re-sealed since */
	assert_int_equal(open_count(f), 1);
	ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 10 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	only(f, KIND_SEALED_GATE, "resolved"); /* a tie: the re-seal wins */
}

/* A sealed gate's latest closed and breach restored at start: a forced
 * dated before the closed is raised and resolved at once; a closed dated
 * before the breach resolves nothing. */
static void
sealed_gate_state_restored(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G09", 1, 1);
	restore_seen(f, "seal_closed", "s1", "G09", "", T0 + 2 * S, T0 + MIN);
	restore_seen(f, "seal_closed", "s1", "G09", "", T0 + S, T0 + MIN); /* older: kept 2 s */
	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0 + S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	assert_int_equal(f->out.n, 2);
	assert_string_equal(f->out.t[1].what, "resolved");
	assert_true(f->out.t[1].a.resolved_us == T0 + 2 * S);
	restore_seen(f, "seal_breach", "s1", "G09", "", T0 + 10 * S, T0 + MIN);
	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0 + 9 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	only(f, KIND_SEALED_GATE, "raised");
	ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 5 * S);
	apply_at(f, &ev, clk(f, T0 + MIN));
	none(f); /* the restored breach is later */
}

/* Every order of the states of two sealed gates and passes through them:
 * the same sealed_gate alerts open at the end, and a gate whose last state
 * is a breach has its alert open. */
#define NGSTEP 8

static void
run_gate_steps(const int *order, int n, char *out, size_t outlen)
{
	static const struct {
		const char *gate;
		int kind; /* 0 pass, else a gate state */
		enum gate_state st;
		int64_t at;
	} gs[NGSTEP] = {
		{ "G1", 1, STATE_FORCED, T0 + 1 * S },
		{ "G1", 1, STATE_CLOSED, T0 + 2 * S },
		{ "G1", 0, STATE_OPEN, T0 + 3 * S }, /* a pass */
		{ "G1", 1, STATE_CLOSED, T0 + 4 * S },
		{ "G2", 1, STATE_CLOSED, T0 + 1 * S },
		{ "G2", 1, STATE_OPEN, T0 + 2 * S },
		{ "G2", 0, STATE_OPEN, T0 + 3 * S }, /* a pass */
		{ "G2", 1, STATE_FORCED, T0 + 5 * S },
	};
	const struct alert *open[8];
	struct fx *f;
	size_t len = 0, nopen, raised = 0, resolved = 0;

	setup((void **)&f);
	add_gate(f->reg, "s1", "G1", 1, 1);
	add_gate(f->reg, "s1", "G2", 1, 1);
	for (int i = 0; i < n; i++) {
		struct event ev = gs[order[i]].kind ?
			status_ev(f, "s1", gs[order[i]].gate, gs[order[i]].st, gs[order[i]].at) :
			gate_ev(f, "s1", gs[order[i]].gate, "C-1", "P-1", DIR_IN, 365,
				gs[order[i]].at);

		apply_at(f, &ev, clk(f, T0 + MIN));
		for (size_t k = 0; k < f->out.n; k++) {
			raised += strcmp(f->out.t[k].what, "raised") == 0;
			resolved += strcmp(f->out.t[k].what, "resolved") == 0;
		}
	}
	nopen = rules_open_alerts(f->r, open, 8);
	out[0] = '\0';
	for (size_t i = 0; i < nopen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s %s;",
					alert_state_kind_name(open[i]->kind), open[i]->subject);
	/* every alert raised is resolved but the open ones */
	assert_int_equal(raised, resolved + nopen);
	teardown((void **)&f);
}

static void
sealed_gate_states_in_any_order(void **state)
{
	char want[256], got[256];
	int order[NGSTEP];
	long nperm = 0;

	(void)state;
	for (int i = 0; i < NGSTEP; i++)
		order[i] = i;
	run_gate_steps(order, NGSTEP, want, sizeof(want));
	assert_string_equal(want, "sealed_gate gate:G2;");
	do {
		run_gate_steps(order, NGSTEP, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			for (int i = 0; i < NGSTEP; i++)
				print_message("%d ", order[i]);
			fail_msg("order above gives %s, want %s", got, want);
		}
		nperm++;
	} while (next_permutation(order, NGSTEP));
	assert_int_equal(nperm, 40320);
}

/* Fever readings and their normal re-checks of two people, in every
 * order (a bridge replaying a backlog, a broker reordering): the same
 * alerts raised, resolved "rechecked" at the same times, and the same one
 * left open, as in time order. */
#define NFSTEP 8

static void
run_fever_steps(const int *order, int n, char *out, size_t outlen)
{
	static const struct {
		const char *person;
		int temp_dc;
		int64_t at;
	} fs[NFSTEP] = {
		{ "P-1", 380, T0 }, /* rechecked at 5 min */
		{ "P-1", 365, T0 + 5 * MIN },
		{ "P-1", 381, T0 + 40 * MIN }, /* open: its recheck comes late */
		{ "P-1", 382, T0 + 45 * MIN },
		{ "P-1", 366, T0 + 80 * MIN },
		{ "P-2", 390, T0 + 10 * MIN }, /* rechecked at 35 min, 25 min later */
		{ "P-2", 380, T0 + 20 * MIN },
		{ "P-2", 364, T0 + 35 * MIN },
	};
	char res[8][96];
	const struct alert *open[8];
	struct fx *f;
	size_t len = 0, nopen, raised = 0, nres = 0;

	setup((void **)&f);
	for (int i = 0; i < n; i++) {
		struct event ev = gate_ev(f, "s1", "G01", "", fs[order[i]].person, DIR_IN,
					  fs[order[i]].temp_dc, fs[order[i]].at);

		apply_at(f, &ev, clk(f, T0 + 2 * HOUR));
		for (size_t k = 0; k < f->out.n; k++) {
			const struct alert *a = &f->out.t[k].a;

			raised += strcmp(f->out.t[k].what, "raised") == 0;
			if (strcmp(f->out.t[k].what, "resolved") != 0)
				continue;
			assert_true(nres < 8);
			/* not its raised time: an alert is raised at its first
			 * fever to arrive, and keeps it */
			snprintf(res[nres++], sizeof(res[0]), "%.40s at %d %.20s", a->subject,
				 (int)((a->resolved_us - T0) / MIN), a->reason);
		}
	}
	/* the resolved ones sorted, then the open ones */
	qsort(res, nres, sizeof(res[0]), (int (*)(const void *, const void *))strcmp);
	out[0] = '\0';
	for (size_t i = 0; i < nres; i++)
		len += (size_t)snprintf(out + len, outlen - len, "resolved %s;", res[i]);
	nopen = rules_open_alerts(f->r, open, 8);
	for (size_t i = 0; i < nopen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "open %s %s %d;",
					alert_state_kind_name(open[i]->kind), open[i]->subject,
					open[i]->count);
	/* as many raised as in time order; every one resolved but the open */
	snprintf(out + len, outlen - len, "raised %zu", raised);
	assert_int_equal(raised, nres + nopen);
	teardown((void **)&f);
}

static void
fever_readings_in_any_order(void **state)
{
	char want[512], got[512];
	int order[NFSTEP];
	long nperm = 0;

	(void)state;
	for (int i = 0; i < NFSTEP; i++)
		order[i] = i;
	run_fever_steps(order, NFSTEP, want, sizeof(want));
	assert_string_equal(want,
			    "resolved person:P-1 at 5 rechecked;"
			    "resolved person:P-2 at 35 rechecked;"
			    "open fever person:P-1 2;raised 3");
	do {
		run_fever_steps(order, NFSTEP, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			for (int i = 0; i < NFSTEP; i++)
				print_message("%d ", order[i]);
			fail_msg("order above gives %s, want %s", got, want);
		}
		nperm++;
	} while (next_permutation(order, NFSTEP));
	assert_int_equal(nperm, 40320);
}

/* Operators' acks and resolves mixed with the rules' own steps, in every
 * order: each alert ends in the same state (acked, resolved), an open one
 * with the same count, and none is acked twice or resolved twice. Who
 * resolved an alert that both an operator and its rule resolve is the
 * first to arrive (docs/alerts.md, "Acknowledging and resolving"). */
#define NASTEP 8

static void
run_ack_steps(const int *order, int n, char *out, size_t outlen)
{
	struct fx *f;
	struct event ev;
	char ids[3][33];
	const char *last[3] = { "", "", "" };
	int acked[3] = { 0 }, resolved[3] = { 0 };
	const struct alert *open[8];
	size_t len = 0, nopen;

	setup((void **)&f);
	add_gate(f->reg, "s1", "G09", 1, 1);
	/* A: a fever of P-1; B: the sealed gate G09; C: a fever of P-2 */
	ev = gate_ev(f, "s1", "G01", "", "P-1", DIR_IN, 385, T0);
	apply(f, &ev);
	snprintf(ids[0], sizeof(ids[0]), "%s", f->out.t[0].a.alert_id);
	ev = status_ev(f, "s1", "G09", STATE_FORCED, T0);
	apply(f, &ev);
	snprintf(ids[1], sizeof(ids[1]), "%s", f->out.t[0].a.alert_id);
	ev = gate_ev(f, "s1", "G02", "", "P-2", DIR_IN, 380, T0);
	apply(f, &ev);
	snprintf(ids[2], sizeof(ids[2]), "%s", f->out.t[0].a.alert_id);
	for (int i = 0; i < n; i++) {
		switch (order[i]) {
		case 0: /* A acked */
		case 1: /* and the same ack again (a redelivery) */
			ev = ack_ev(f, "s1", ids[0], ACK_ACK, "op-1", T0 + MIN);
			break;
		case 2: /* A resolved by an operator */
			ev = ack_ev(f, "s1", ids[0], ACK_RESOLVE, "op-2", T0 + 2 * MIN);
			break;
		case 3: /* A's normal re-check */
			ev = gate_ev(f, "s1", "G01", "", "P-1", DIR_IN, 365, T0 + 5 * MIN);
			break;
		case 4: /* B acked */
			ev = ack_ev(f, "s1", ids[1], ACK_ACK, "op-3", T0 + MIN);
			break;
		case 5: /* B re-sealed */
			ev = status_ev(f, "s1", "G09", STATE_CLOSED, T0 + 3 * MIN);
			break;
		case 6: /* C acked */
			ev = ack_ev(f, "s1", ids[2], ACK_ACK, "op-4", T0 + MIN);
			break;
		default: /* C's fever again */
			ev = gate_ev(f, "s1", "G02", "", "P-2", DIR_IN, 381, T0 + 4 * MIN);
			break;
		}
		apply_at(f, &ev, clk(f, T0 + 10 * MIN));
		for (size_t k = 0; k < f->out.n; k++)
			for (int j = 0; j < 3; j++)
				if (strcmp(f->out.t[k].a.alert_id, ids[j]) == 0) {
					last[j] = f->out.t[k].what;
					acked[j] += strcmp(last[j], "acked") == 0;
					resolved[j] += strcmp(last[j], "resolved") == 0;
				}
	}
	out[0] = '\0';
	for (int j = 0; j < 3; j++) {
		assert_true(acked[j] <= 1 && resolved[j] <= 1);
		len += (size_t)snprintf(out + len, outlen - len, "%c %s;", 'A' + j,
					resolved[j]	 ? "resolved" :
						acked[j] ? "acked" :
							   "raised");
	}
	nopen = rules_open_alerts(f->r, open, 8);
	for (size_t i = 0; i < nopen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "open %s %s %u;", open[i]->subject,
					alert_state_name(open[i]->state), open[i]->count);
	teardown((void **)&f);
}

static void
acks_in_any_order(void **state)
{
	char want[512], got[512];
	int order[NASTEP];
	long nperm = 0;

	(void)state;
	for (int i = 0; i < NASTEP; i++)
		order[i] = i;
	run_ack_steps(order, NASTEP, want, sizeof(want));
	assert_string_equal(want, "A resolved;B resolved;C acked;open person:P-2 acked 2;");
	do {
		run_ack_steps(order, NASTEP, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			for (int i = 0; i < NASTEP; i++)
				print_message("%d ", order[i]);
			fail_msg("order above gives %s, want %s", got, want);
		}
		nperm++;
	} while (next_permutation(order, NASTEP));
	assert_int_equal(nperm, 40320);
}

/* Random sets of ten readings of one person within two hours, each in
 * time order and in 50 shuffles: the same alert left open, with the same
 * count, as in time order. The transitions on the way may differ in such
 * dense sets (a resolve already published is not taken back: see
 * docs/alerts.md, fever); how often is printed. */
struct rd {
	int temp;
	int64_t at;
};

static void
run_rd(const struct rd *rd, const int *order, int n, char *out, size_t outlen, size_t *raised)
{
	const struct alert *open[8];
	struct fx *f;
	size_t len = 0, nopen;

	*raised = 0;
	setup((void **)&f);
	for (int i = 0; i < n; i++) {
		struct event ev = gate_ev(f, "s1", "G01", "", "P-1", DIR_IN, rd[order[i]].temp,
					  rd[order[i]].at);

		apply_at(f, &ev, clk(f, T0 + 5 * HOUR));
		for (size_t k = 0; k < f->out.n; k++)
			*raised += strcmp(f->out.t[k].what, "raised") == 0;
	}
	out[0] = '\0';
	nopen = rules_open_alerts(f->r, open, 8);
	{ /* the counts by state agree with the alerts, whatever the order */
		uint64_t raised_n, acked_n;

		rules_open_totals(f->r, &raised_n, &acked_n);
		assert_true(raised_n + acked_n == nopen);
	}
	for (size_t i = 0; i < nopen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "open %s %u;", open[i]->subject,
					open[i]->count);
	teardown((void **)&f);
}

static void
fever_readings_shuffled(void **state)
{
	uint64_t seed = 12345;
	int total = 0, more_raised = 0;

	(void)state;
	for (int set = 0; set < 300; set++) {
		struct rd rd[10];
		int n = 10, order[10];
		char want[256], got[256];
		size_t want_raised, got_raised;

		for (int i = 0; i < n; i++) {
			rd[i].at = T0 + (int64_t)(rng_next(&seed) % 120) * MIN + i;
			rd[i].temp = rng_next(&seed) % 2 ? 380 : 365;
			order[i] = i;
		}
		for (int i = 1; i < n; i++) /* time order */
			for (int j = i; j > 0 && rd[order[j]].at < rd[order[j - 1]].at; j--) {
				int t = order[j];

				order[j] = order[j - 1];
				order[j - 1] = t;
			}
		run_rd(rd, order, n, want, sizeof(want), &want_raised);
		for (int round = 0; round < 50; round++) {
			for (int i = n - 1; i > 0; i--) {
				int j = (int)(rng_next(&seed) % (uint64_t)(i + 1)), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			run_rd(rd, order, n, got, sizeof(got), &got_raised);
			if (strcmp(got, want) != 0)
				fail_msg("set %d round %d: %s, want %s", set, round, got, want);
			total++;
			more_raised += got_raised != want_raised;
		}
	}
	print_message("fever shuffles: %d, with more alerts raised than in time order: %d\n", total,
		      more_raised);
}

/* ---- backlog ---- */

static int
backlog(struct fx *f, int trouble, const char *why, int64_t wall)
{
	struct rules_clock now = clk(f, wall);

	return rules_backlog(f->r, "cordond-1", trouble, why, &now, &f->out);
}

static void
backlog_raise_and_recover(void **state)
{
	struct fx *f = *state;

	rules_output_clear(&f->out);
	assert_int_equal(backlog(f, 0, "", T0), 0);
	none(f);
	assert_int_equal(backlog(f, 1, "spool over 80% full", T0), 0);
	only(f, KIND_BACKLOG, "raised");
	assert_string_equal(f->out.t[0].a.site, "_daemon");
	assert_string_equal(f->out.t[0].a.subject, "instance:cordond-1");
	assert_int_equal(f->out.t[0].a.severity, SEVERITY_CRITICAL);
	assert_string_equal(f->out.t[0].a.reason, "spool over 80% full");
	rules_output_clear(&f->out);
	assert_int_equal(backlog(f, 1, "spool over 80% full", T0 + S), 0);
	none(f);
	assert_int_equal(backlog(f, 0, "", T0 + 2 * S), 0);
	only(f, KIND_BACKLOG, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "recovered");
}

/* ---- restored state (G3) ---- */

static void
restored_alert_continues(void **state)
{
	struct fx *f = *state;
	struct alert a;
	struct event ev;

	memset(&a, 0, sizeof(a));
	rules_alert_id("s1", "fever", "person:P-1", "s1/G01/X", a.alert_id);
	a.kind = KIND_FEVER;
	a.severity = SEVERITY_WARNING;
	a.state = ALERT_ACKED;
	snprintf(a.site, sizeof(a.site), "s1");
	snprintf(a.subject, sizeof(a.subject), "person:P-1");
	snprintf(a.event_key, sizeof(a.event_key), "s1/G01/X");
	a.temp_dc = 375;
	a.raised_us = a.updated_us = T0 - MIN;
	a.count = 7;
	assert_int_equal(restore_alert(f, &a), 0);
	assert_int_equal(restore_alert(f, &a), 0); /* twice: once */
	assert_int_equal(open_count(f), 1);
	ev = gate_ev(f, "s1", "G01", "C-1", "P-1", DIR_IN, 380, T0 + 5 * MIN);
	apply(f, &ev);
	only(f, KIND_FEVER, "updated");
	assert_string_equal(f->out.t[0].a.alert_id, a.alert_id);
	assert_int_equal(f->out.t[0].a.count, 8);
	assert_int_equal(f->out.t[0].a.state, ALERT_ACKED);
	ev = ack_ev(f, "s1", a.alert_id, ACK_RESOLVE, "op-1", T0 + 6 * MIN);
	apply(f, &ev);
	only(f, KIND_FEVER, "resolved");
}

/* An alert's count is stored in an integer column: it stops there. */
static void
count_stops_at_the_column_maximum(void **state)
{
	struct fx *f = *state;
	struct alert a;
	struct event ev;

	memset(&a, 0, sizeof(a));
	rules_alert_id("s1", "fever", "person:P-2", "s1/G01/Y", a.alert_id);
	a.kind = KIND_FEVER;
	a.severity = SEVERITY_WARNING;
	a.state = ALERT_RAISED;
	snprintf(a.site, sizeof(a.site), "s1");
	snprintf(a.subject, sizeof(a.subject), "person:P-2");
	snprintf(a.event_key, sizeof(a.event_key), "s1/G01/Y");
	a.temp_dc = 375;
	a.raised_us = a.updated_us = T0 - MIN;
	a.count = INT32_MAX - 1;
	assert_int_equal(restore_alert(f, &a), 0);
	for (int i = 0; i < 3; i++) {
		ev = gate_ev(f, "s1", "G01", "C-2", "P-2", DIR_IN, 380, T0 + (i + 1) * 5 * MIN);
		apply(f, &ev);
		only(f, KIND_FEVER, "updated");
		assert_int_equal(f->out.t[0].a.count, INT32_MAX);
	}
}

static void
restored_seen_times(void **state)
{
	struct fx *f = *state;
	struct rules_clock now = clk(f, T0 + 3 * MIN);

	add_gate(f->reg, "s1", "G05", 0, 1);
	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "P-7", T0 - 24 * HOUR, T0 + 24 * HOUR, 3600);
	/* the state arrives 3 min after the start */
	restore_seen(f, "gate", "s1", "G05", "", T0 + 2 * MIN, T0 + 3 * MIN);
	restore_seen(f, "check", "s1", "3-2-401", "P-7", T0 - 10 * MIN, T0 + 3 * MIN);
	restore_seen(f, "call", "s1", "H-1", "medical", T0 - 20 * MIN, T0 + 3 * MIN);
	/* what the register does not know is not kept */
	assert_int_equal(restore_seen_in(f->r, f->reg, "gate", "s1", "G99", "", T0, now), 1);
	assert_int_equal(restore_seen_in(f->r, f->reg, "zone", "s1", "Z99", "", T0, now), 1);
	assert_int_equal(restore_seen_in(f->r, f->reg, "check", "s1", "9-9-999", "", T0, now), 1);
	assert_int_equal(restore_seen_in(f->r, f->reg, "seal_closed", "s1", "G05", "", T0, now), 1);
	/* the gate was seen 2 min after start: silent only 5 min after that */
	tick(f, T0 + 6 * MIN);
	none(f);
	tick(f, T0 + 7 * MIN);
	none(f);
	tick(f, T0 + 7 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	/* the call opened 20 min before start: due 30 min after its opening */
	tick(f, T0 + 10 * MIN);
	none(f);
	tick(f, T0 + 10 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
	/* the check resets the clock: due at T0 - 10 min + 1 h + 1 h, not at once
	 * (the order started a day ago) */
	tick(f, T0 + 110 * MIN);
	none(f);
	tick(f, T0 + 110 * MIN + 1);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
}

/* ---- clocks: deadlines on the monotonic clock, steps of the wall clock ---- */

/* The wall clock set back an hour: a gate that then falls silent, and one
 * never heard from since the start, are silent silence_timeout later (not
 * an hour and silence_timeout later). The alert shows the wall clock. */
static void
gate_silent_wall_clock_set_back(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G01", 0, 1);
	add_gate(f->reg, "s1", "G02", 0, 1);
	ev = status_ev(f, "s1", "G01", STATE_ONLINE, T0 + MIN);
	apply(f, &ev);
	none(f);
	f->off -= HOUR;
	tick_mono(f, MONO0 + 5 * MIN);
	none(f);
	tick_mono(f, MONO0 + 5 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	assert_string_equal(f->out.t[0].a.gate, "G02");
	assert_true(f->out.t[0].a.raised_us == T0 - HOUR + 5 * MIN + 1);
	tick_mono(f, MONO0 + 6 * MIN);
	none(f);
	tick_mono(f, MONO0 + 6 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	assert_string_equal(f->out.t[0].a.gate, "G01");
}

/* The wall clock set forward two hours: gates that keep talking are not
 * silent; one that stops is, silence_timeout after its last message. */
static void
gate_silent_wall_clock_set_forward(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G01", 0, 1);
	add_gate(f->reg, "s1", "G02", 0, 1);
	ev = status_ev(f, "s1", "G01", STATE_ONLINE, T0 + 4 * MIN);
	apply(f, &ev);
	ev = status_ev(f, "s1", "G02", STATE_ONLINE, T0 + 4 * MIN);
	apply(f, &ev);
	f->off += 2 * HOUR;
	tick_mono(f, MONO0 + 4 * MIN + S);
	none(f);
	/* G01 goes on talking (its clock set forward too); G02 stops */
	ev = status_ev(f, "s1", "G01", STATE_ONLINE, T0 + 2 * HOUR + 8 * MIN);
	apply(f, &ev);
	none(f);
	tick_mono(f, MONO0 + 9 * MIN);
	none(f);
	tick_mono(f, MONO0 + 9 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	assert_string_equal(f->out.t[0].a.gate, "G02");
	tick_mono(f, MONO0 + 13 * MIN);
	none(f);
}

/* A gate's silence counts from when its message was processed, not from
 * the device's time: a message whose device clock is behind (within
 * max_clock_skew) or that stamps it in the future changes nothing. */
static void
gate_silent_from_processing(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_gate(f->reg, "s1", "G01", 0, 1);
	ev = status_ev(f, "s1", "G01", STATE_ONLINE, T0 - 9 * MIN);
	apply_at(f, &ev, clk(f, T0 + MIN));
	tick(f, T0 + 6 * MIN);
	none(f);
	tick(f, T0 + 6 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
}

/* An urgent call is unresolved hotline_*_limit after it opened, whatever
 * the wall clock does meanwhile. */
static void
hotline_limit_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = hotline_ev(f, "s1", "H-7", CALL_OPEN, "medical", 1, T0);
	apply(f, &ev);
	f->off += 2 * HOUR;
	tick_mono(f, MONO0 + 30 * MIN);
	none(f);
	f->off -= 3 * HOUR;
	tick_mono(f, MONO0 + 30 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
	assert_true(f->out.t[0].a.raised_us == T0 - HOUR + 30 * MIN + 1);
}

/* A check is due interval + grace after the last one on the monotonic
 * clock; whether the order is in force is read on the wall clock. */
static void
isolation_overdue_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 3 * HOUR + 30 * MIN, 3600);
	ev = check_ev(f, "s1", "3-2-401", "", 365, "", T0);
	apply(f, &ev);
	f->off -= HOUR;
	tick_mono(f, MONO0 + 2 * HOUR);
	none(f);
	tick_mono(f, MONO0 + 2 * HOUR + 1);
	only(f, KIND_ISOLATION_OVERDUE, "raised");
	/* the order ends at T0 + 3:30 by the wall clock: 4:30 on the monotonic */
	tick_mono(f, MONO0 + 4 * HOUR + 29 * MIN);
	none(f);
	tick_mono(f, MONO0 + 4 * HOUR + 30 * MIN);
	only(f, KIND_ISOLATION_OVERDUE, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "order ended");
}

/* A disinfection interval counts the monotonic time since it was done,
 * laid on the 06:00-22:00 day of the wall clock as it reads now. */
static void
disinfection_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_site(f->reg, "s1", "Asia/Shanghai");
	add_zone(f->reg, "s1", "Z01", 2 * 3600);
	add_zone(f->reg, "s1", "Z02", 2 * 3600);
	/* Z01 done at 08:00 local; the clock then set forward 2 h */
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0);
	snprintf(ev.zone, sizeof(ev.zone), "Z01");
	apply(f, &ev);
	/* Z02 done at 08:00 too, as far as start is concerned */
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0);
	snprintf(ev.zone, sizeof(ev.zone), "Z02");
	apply(f, &ev);
	f->off += 2 * HOUR;
	tick_mono(f, MONO0 + S);
	none(f);
	tick_mono(f, MONO0 + 2 * HOUR);
	none(f);
	tick_mono(f, MONO0 + 2 * HOUR + S);
	assert_int_equal(f->out.n, 2);
	assert_int_equal(f->out.t[0].a.kind, KIND_DISINFECTION_OVERDUE);
	assert_int_equal(f->out.t[1].a.kind, KIND_DISINFECTION_OVERDUE);
}

/* Done at 21:00 local, the clock set back an hour at once: by the wall
 * clock now it was done at 20:00, so 2 h of the day are left until 22:00
 * and the night does not count: due at 06:00 by the wall clock. */
static void
disinfection_night_after_a_step(void **state)
{
	struct fx *f = *state;
	struct event ev;
	int64_t m = MONO0 + 13 * HOUR; /* 21:00 local */

	add_site(f->reg, "s1", "Asia/Shanghai");
	add_zone(f->reg, "s1", "Z01", 2 * 3600);
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0 + 13 * HOUR);
	snprintf(ev.zone, sizeof(ev.zone), "Z01");
	apply(f, &ev);
	f->off -= HOUR;
	tick_mono(f, m + 2 * HOUR); /* 22:00 by the wall clock */
	none(f);
	tick_mono(f, m + 10 * HOUR); /* 06:00 */
	none(f);
	tick_mono(f, m + 10 * HOUR + S);
	only(f, KIND_DISINFECTION_OVERDUE, "raised");
}

/* exit_quota: the passes counted and the window's end are monotonic. */
static void
exit_quota_window_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev;

	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-1", "3-2-401", 0);
	f->cfg.exit_quota = 1;
	f->cfg.exit_window_us = HOUR;
	set_config(f);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0);
	apply(f, &ev);
	ev = gate_ev(f, "s1", "G01", "C-1", "", DIR_OUT, 365, T0 + MIN);
	apply(f, &ev);
	only(f, KIND_EXIT_QUOTA, "raised");
	f->off += 2 * HOUR;
	tick_mono(f, MONO0 + 59 * MIN);
	none(f);
	tick_mono(f, MONO0 + HOUR); /* the first pass left the window */
	only(f, KIND_EXIT_QUOTA, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "window ended");
}

/* Repeats are published repeat_interval after the last publication on the
 * monotonic clock, also after the wall clock was set back. */
static void
repeat_interval_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 386, T0);

	apply(f, &ev);
	only(f, KIND_FEVER, "raised");
	ev = gate_ev(f, "s1", "G03", "C-1", "P-1", DIR_IN, 387, T0 + 10 * S);
	apply(f, &ev);
	none(f);
	f->off -= HOUR;
	tick_mono(f, MONO0 + 59 * S);
	none(f);
	tick_mono(f, MONO0 + 60 * S);
	only(f, KIND_FEVER, "updated");
	assert_int_equal(f->out.t[0].a.count, 2);
	assert_true(f->out.t[0].a.updated_us == T0 + 10 * S);
}

/* Times restored from PostgreSQL are put on the monotonic clock by their
 * age; one later than now (the wall clock was set back since it was
 * stored) counts as now, not as a time that has not come yet. */
static void
restored_times_after_the_clock_was_set_back(void **state)
{
	struct fx *f = *state;

	add_gate(f->reg, "s1", "G05", 0, 1);
	restore_seen(f, "gate", "s1", "G05", "", T0 + HOUR, T0);
	restore_seen(f, "call", "s1", "H-1", "medical", T0 + HOUR, T0);
	tick(f, T0 + 5 * MIN);
	none(f);
	tick(f, T0 + 5 * MIN + 1);
	only(f, KIND_GATE_SILENT, "raised");
	tick(f, T0 + 30 * MIN);
	none(f);
	tick(f, T0 + 30 * MIN + 1);
	only(f, KIND_HOTLINE_UNRESOLVED, "raised");
}

/* Another boot: the monotonic clock starts again near 0, and times from
 * before it lie before its origin; then NTP sets the wall clock (here back
 * an hour: the RTC was fast), which moves no deadline. */
static void
monotonic_origin_after_a_boot(void **state)
{
	struct fx *f = *state;
	struct rules *r;
	struct rules_output out = { 0 };
	struct rules_clock now = { .wall_us = T0, .mono_us = 2 * S };

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 24 * HOUR, 3600);
	assert_int_equal(rules_create(&f->cfg, &now, &r), 0);
	/* the last check 90 min ago, long before the boot: due 30 min from now */
	assert_int_equal(
		restore_seen_in(r, f->reg, "check", "s1", "3-2-401", "", T0 - 90 * MIN, now), 0);
	now.wall_us += 30 * MIN - HOUR;
	now.mono_us += 30 * MIN;
	assert_int_equal(rules_tick(r, f->reg, &now, &out), 0);
	assert_int_equal(out.n, 0);
	now.wall_us += 1;
	now.mono_us += 1;
	assert_int_equal(rules_tick(r, f->reg, &now, &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.t[0].a.kind, KIND_ISOLATION_OVERDUE);
	rules_output_free(&out);
	rules_destroy(r);
}

/* ---- the bound on open alerts (issue 13, point 5) ---- */

/* The open alert of a kind and subject at a site, or NULL. */
static const struct alert *
open_alert(struct fx *f, const char *site, enum alert_kind kind, const char *subject)
{
	const struct alert *a[256];
	size_t n = rules_open_alerts(f->r, a, 256);

	for (size_t i = 0; i < n; i++)
		if (a[i]->kind == kind && strcmp(a[i]->site, site) == 0 &&
		    strcmp(a[i]->subject, subject) == 0)
			return a[i];
	return NULL;
}

static size_t
open_of(struct fx *f, const char *site, enum alert_kind kind)
{
	const struct alert *a[256];
	size_t n = rules_open_alerts(f->r, a, 256), k = 0;

	for (size_t i = 0; i < n; i++)
		k += a[i]->kind == kind && strcmp(a[i]->site, site) == 0;
	return k;
}

static void
unknown_card(struct fx *f, const char *site, unsigned i, int64_t at)
{
	char card[32];
	struct event ev;

	snprintf(card, sizeof(card), "X-%05u", i);
	ev = gate_ev(f, site, "G01", card, "", DIR_IN, TEMP_NONE, at);
	apply(f, &ev);
}

/* 200 distinct unknown cards with max_open_alerts = 5: five alerts, then
 * one aggregate that counts the other 195 exactly and shows four. */
static void
fold_past_the_bound(void **state)
{
	struct fx *f = *state;
	const struct alert *g;
	char agg_id[33];

	f->cfg.max_open_alerts = 5;
	set_config(f);
	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-0412", "3-2-401", 0);
	add_household(f->reg, "s2", "1-1-101");
	add_card(f->reg, "s2", "C-1", "1-1-101", 0);
	for (unsigned i = 0; i < 5; i++) {
		unknown_card(f, "s1", i, T0 + i);
		only(f, KIND_UNKNOWN_CARD, "raised");
	}
	unknown_card(f, "s1", 5, T0 + 5);
	only(f, KIND_UNKNOWN_CARD, "raised");
	g = &f->out.t[0].a;
	assert_string_equal(g->subject, ALERT_AGGREGATE);
	assert_int_equal(g->distinct, 1);
	assert_int_equal(g->count, 1);
	assert_string_equal(g->sample, "card:X-00005");
	assert_string_equal(g->card, "");
	assert_true(alert_state_is_aggregate(g));
	snprintf(agg_id, sizeof(agg_id), "%s", g->alert_id);
	/* within repeat_interval: counted, not published */
	for (unsigned i = 6; i < 200; i++) {
		unknown_card(f, "s1", i, T0 + i);
		none(f);
	}
	assert_int_equal(open_of(f, "s1", KIND_UNKNOWN_CARD), 6);
	g = open_alert(f, "s1", KIND_UNKNOWN_CARD, ALERT_AGGREGATE);
	assert_non_null(g);
	assert_int_equal(g->distinct, 195);
	assert_int_equal(g->count, 195);
	assert_string_equal(g->sample, "card:X-00005 card:X-00006 card:X-00007 card:X-00008");
	/* a folded card again: one more trigger, no more distinct; an open
	 * card again: its own alert */
	unknown_card(f, "s1", 100, T0 + 2 * S);
	none(f);
	unknown_card(f, "s1", 2, T0 + 3 * S);
	none(f);
	assert_int_equal(open_alert(f, "s1", KIND_UNKNOWN_CARD, "card:X-00002")->count, 2);
	g = open_alert(f, "s1", KIND_UNKNOWN_CARD, ALERT_AGGREGATE);
	assert_int_equal(g->distinct, 195);
	assert_int_equal(g->count, 196);
	/* the repeats are published after repeat_interval */
	tick(f, T0 + 61 * S);
	assert_int_equal(f->out.n, 2); /* X-00002's repeat, and the aggregate's */
	{
		const struct alert_transition *t =
			&f->out.t[alert_state_is_aggregate(&f->out.t[0].a) ? 0 : 1];

		assert_string_equal(t->what, "updated");
		assert_string_equal(t->a.alert_id, agg_id);
		assert_int_equal(t->a.distinct, 195);
	}
	/* the bound is per site and per kind */
	unknown_card(f, "s2", 1, T0 + 62 * S);
	only(f, KIND_UNKNOWN_CARD, "raised");
	assert_string_equal(f->out.t[0].a.subject, "card:X-00001");
	{
		struct event ev = gate_ev(f, "s1", "G01", "X-00199", "", DIR_IN, 380, T0 + 63 * S);

		apply(f, &ev);
		/* its unknown_card is folded (a repeat: no output), its fever not */
		only(f, KIND_FEVER, "raised");
	}
	/* an individual alert resolved makes room for a new subject */
	rules_output_clear(&f->out);
	{
		struct event ev = ack_ev(
			f, "s1", open_alert(f, "s1", KIND_UNKNOWN_CARD, "card:X-00000")->alert_id,
			ACK_RESOLVE, "op-1", T0 + 64 * S);

		apply(f, &ev);
		only(f, KIND_UNKNOWN_CARD, "resolved");
	}
	unknown_card(f, "s1", 1000, T0 + 65 * S);
	only(f, KIND_UNKNOWN_CARD, "raised");
	assert_string_equal(f->out.t[0].a.subject, "card:X-01000");
	assert_int_equal(open_of(f, "s1", KIND_UNKNOWN_CARD), 6);
}

/* The aggregate is resolved once nothing was folded into it for an hour;
 * the next folded subject raises a new one. */
static void
aggregate_resolved_when_quiet(void **state)
{
	struct fx *f = *state;
	char first[33];

	f->cfg.max_open_alerts = 1;
	set_config(f);
	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-0412", "3-2-401", 0);
	unknown_card(f, "s1", 0, T0);
	unknown_card(f, "s1", 1, T0 + S);
	only(f, KIND_UNKNOWN_CARD, "raised");
	snprintf(first, sizeof(first), "%s", f->out.t[0].a.alert_id);
	unknown_card(f, "s1", 1, T0 + 30 * MIN); /* a repeat keeps it open */
	tick(f, T0 + 30 * MIN + HOUR - 1);
	assert_int_equal(f->out.n, 0);
	tick(f, T0 + 30 * MIN + HOUR);
	only(f, KIND_UNKNOWN_CARD, "resolved");
	assert_string_equal(f->out.t[0].a.alert_id, first);
	assert_string_equal(f->out.t[0].a.reason, "nothing folded for 1 h");
	assert_int_equal(open_of(f, "s1", KIND_UNKNOWN_CARD), 1);
	unknown_card(f, "s1", 2, T0 + 2 * HOUR);
	only(f, KIND_UNKNOWN_CARD, "raised");
	assert_true(alert_state_is_aggregate(&f->out.t[0].a));
	assert_string_not_equal(f->out.t[0].a.alert_id, first);
	assert_int_equal(f->out.t[0].a.distinct, 1);
}

/* Past 256 subjects the count is a HyperLogLog estimate: within 10 % of
 * 100,000 (3.3 % standard error; the hash is fixed, so is the result). */
static void
fold_estimate_of_a_flood(void **state)
{
	struct fx *f = *state;
	const struct alert *g;

	f->cfg.max_open_alerts = 5;
	set_config(f);
	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-0412", "3-2-401", 0);
	for (unsigned i = 0; i < 100005; i++)
		unknown_card(f, "s1", i, T0 + i);
	assert_int_equal(open_of(f, "s1", KIND_UNKNOWN_CARD), 6);
	g = open_alert(f, "s1", KIND_UNKNOWN_CARD, ALERT_AGGREGATE);
	assert_non_null(g);
	print_message("100,000 distinct subjects folded: estimated %u\n", g->distinct);
	assert_in_range(g->distinct, 90000, 110000);
	assert_int_equal(g->count, 100000);
	/* just past the exact part: still close */
	rules_destroy(f->r);
	assert_int_equal(rules_create(&f->cfg, (struct rules_clock[]){ clk(f, T0) }, &f->r), 0);
	for (unsigned i = 0; i < 5 + 300; i++)
		unknown_card(f, "s1", i, T0 + i);
	g = open_alert(f, "s1", KIND_UNKNOWN_CARD, ALERT_AGGREGATE);
	assert_in_range(g->distinct, 285, 315);
}

/* A timer rule fires again on every tick: a folded subject counts once. */
static void
fold_timer_kind(void **state)
{
	struct fx *f = *state;
	const struct alert *g;

	f->cfg.max_open_alerts = 1;
	set_config(f);
	add_gate(f->reg, "s1", "G01", 0, 1);
	add_gate(f->reg, "s1", "G02", 0, 1);
	add_gate(f->reg, "s1", "G03", 0, 1);
	tick(f, T0 + 6 * MIN);
	assert_int_equal(f->out.n, 2); /* G01, and the aggregate of G02 and G03 */
	for (int i = 0; i < 10; i++)
		tick(f, T0 + 7 * MIN + i * 2 * MIN);
	g = open_alert(f, "s1", KIND_GATE_SILENT, ALERT_AGGREGATE);
	assert_non_null(g);
	assert_int_equal(g->distinct, 2);
	assert_int_equal(g->count, 2);
	assert_string_equal(g->sample, "gate:G02 gate:G03");
	/* still silent after an hour: the ticks keep it open */
	tick(f, T0 + 6 * MIN + 2 * HOUR);
	assert_non_null(open_alert(f, "s1", KIND_GATE_SILENT, ALERT_AGGREGATE));
}

/* Restoring 4 open alerts with a bound of 2 (a database from before the
 * bound): two restored, two folded into a new aggregate and resolved. An
 * aggregate restored goes on from its count. */
static void
restore_respects_the_bound(void **state)
{
	struct fx *f = *state;
	struct alert a;
	const struct alert *g;

	f->cfg.max_open_alerts = 2;
	set_config(f);
	memset(&a, 0, sizeof(a));
	a.kind = KIND_UNKNOWN_CARD;
	a.severity = SEVERITY_WARNING;
	a.state = ALERT_RAISED;
	a.temp_dc = TEMP_NONE;
	snprintf(a.site, sizeof(a.site), "s1");
	a.raised_us = a.updated_us = T0 - MIN;
	a.count = 1;
	for (int i = 0; i < 4; i++) {
		snprintf(a.subject, sizeof(a.subject), "card:R-%d", i);
		snprintf(a.event_key, sizeof(a.event_key), "s1/G01/%d", i);
		rules_alert_id("s1", "unknown_card", a.subject, a.event_key, a.alert_id);
		rules_output_clear(&f->out);
		assert_int_equal(restore_alert(f, &a), i < 2 ? 0 : 1);
		if (i < 2) {
			none(f);
			continue;
		}
		/* the aggregate raised (once), the alert resolved as folded */
		assert_int_equal(f->out.n, i == 2 ? 2 : 1);
		assert_string_equal(f->out.t[f->out.n - 1].what, "resolved");
		assert_string_equal(f->out.t[f->out.n - 1].a.alert_id, a.alert_id);
		assert_string_equal(f->out.t[f->out.n - 1].a.reason, "folded");
		if (i == 2) {
			assert_string_equal(f->out.t[0].what, "raised");
			assert_true(alert_state_is_aggregate(&f->out.t[0].a));
		}
	}
	assert_int_equal(open_of(f, "s1", KIND_UNKNOWN_CARD), 3);
	g = open_alert(f, "s1", KIND_UNKNOWN_CARD, ALERT_AGGREGATE);
	assert_int_equal(g->distinct, 2);
	assert_string_equal(g->sample, "card:R-2 card:R-3");

	/* an aggregate from PostgreSQL */
	rules_destroy(f->r);
	assert_int_equal(rules_create(&f->cfg, (struct rules_clock[]){ clk(f, T0) }, &f->r), 0);
	snprintf(a.subject, sizeof(a.subject), "%s", ALERT_AGGREGATE);
	snprintf(a.sample, sizeof(a.sample), "card:Q-1 card:Q-2");
	rules_alert_id("s1", "unknown_card", a.subject, a.event_key, a.alert_id);
	a.distinct = 10;
	a.count = 12;
	assert_int_equal(restore_alert(f, &a), 0);
	add_household(f->reg, "s1", "3-2-401");
	add_card(f->reg, "s1", "C-0412", "3-2-401", 0);
	unknown_card(f, "s1", 0, T0 + S);
	unknown_card(f, "s1", 1, T0 + 2 * S);
	only(f, KIND_UNKNOWN_CARD, "raised"); /* X-00001: the second slot */
	unknown_card(f, "s1", 2, T0 + 3 * S);
	only(f, KIND_UNKNOWN_CARD, "updated"); /* folded: published at once, last out a min ago */
	assert_string_equal(f->out.t[0].a.alert_id, a.alert_id);
	assert_int_equal(f->out.t[0].a.distinct, 11);
	assert_int_equal(f->out.t[0].a.count, 13);
	assert_string_equal(f->out.t[0].a.sample, "card:Q-1 card:Q-2 card:X-00002");
}

/* What arrives cannot grow the rule state: 10,000 messages from
 * unregistered gates, zones, households and urgent calls with distinct
 * ids leave it bounded (registered ones are kept as before). */
static void
seen_state_bounded(void **state)
{
	struct fx *f = *state;
	size_t base;
	struct event ev;

	add_gate(f->reg, "s1", "G01", 0, 1);
	add_zone(f->reg, "s1", "Z1", 0);
	add_order(f->reg, "s1", "3-2-401", "", T0 - HOUR, T0 + 48 * HOUR, 0);
	ev = gate_ev(f, "s1", "G01", "", "", DIR_IN, TEMP_NONE, T0);
	apply(f, &ev);
	ev = ev_base(f, EVENT_DISINFECTION, "s1", T0);
	snprintf(ev.zone, sizeof(ev.zone), "Z1");
	apply(f, &ev);
	ev = check_ev(f, "s1", "3-2-401", "", 365, "", T0);
	apply(f, &ev);
	base = rules_entries(f->r);
	/* the gate, the zone, the household's check and its reading (kept
	 * for fever rechecks out of order) */
	assert_int_equal(base, 4);
	for (int i = 0; i < 10000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "U-%05d", i);
		ev = gate_ev(f, "s1", id, "", "", DIR_IN, TEMP_NONE, T0 + i);
		apply(f, &ev);
		ev = status_ev(f, "s1", id, STATE_ONLINE, T0 + i);
		apply(f, &ev);
		ev = ev_base(f, EVENT_DISINFECTION, "s1", T0 + i);
		snprintf(ev.zone, sizeof(ev.zone), "%s", id);
		apply(f, &ev);
		ev = check_ev(f, "s1", id, "P-1", 365, "", T0 + i);
		apply(f, &ev);
	}
	assert_int_equal(rules_entries(f->r), base + 1); /* person:P-1's readings */
	/* urgent calls: at most 10,000 followed */
	for (int i = 0; i < 10500; i++) {
		char id[32];

		snprintf(id, sizeof(id), "CALL-%05d", i);
		ev = hotline_ev(f, "s1", id, CALL_OPEN, "other", 1, T0 + i);
		apply(f, &ev);
	}
	assert_int_equal(rules_entries(f->r), base + 1 + 10000);
	/* readings kept for fever rechecks: of at most 20,000 subjects (a
	 * new engine, an empty register) */
	rules_destroy(f->r);
	assert_int_equal(rules_create(&f->cfg, (struct rules_clock[]){ clk(f, T0) }, &f->r), 0);
	registry_snapshot_free(f->reg);
	f->reg = registry_snapshot_empty("Asia/Shanghai");
	assert_non_null(f->reg);
	for (int i = 0; i < 21000; i++) {
		char id[32];

		snprintf(id, sizeof(id), "R-%05d", i);
		ev = check_ev(f, "s1", "9-9-999", id, 365, "", T0 + i);
		apply(f, &ev);
	}
	assert_int_equal(rules_entries(f->r), 20000);
	/* and forgotten a day (plus recheck_window) after their last */
	tick(f, T0 + 24 * HOUR + 30 * MIN);
	assert_int_equal(rules_entries(f->r), 20000);
	tick(f, T0 + 24 * HOUR + 32 * MIN);
	assert_int_equal(rules_entries(f->r), 0);
}

static void
names(void **state)
{
	(void)state;
	for (int k = 0; k < KIND_COUNT; k++)
		assert_int_equal(
			alert_state_kind_from_name(alert_state_kind_name((enum alert_kind)k)), k);
	assert_int_equal(alert_state_kind_from_name("plague"), -EINVAL);
	assert_string_equal(alert_state_kind_name(KIND_HOTLINE_UNRESOLVED), "hotline_unresolved");
	assert_string_equal(alert_state_severity_name(SEVERITY_CRITICAL), "critical");
	assert_string_equal(alert_state_severity_name(SEVERITY_WARNING), "warning");
	assert_string_equal(alert_state_name(ALERT_ACKED), "acked");
	assert_string_equal(alert_state_name(ALERT_RESOLVED), "resolved");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- the people work (issue 16) ---- */

static struct event
need_ev(struct fx *f, const char *site, const char *need, enum need_action action, const char *hh,
	const char *category, int64_t due, int64_t at)
{
	struct event ev = ev_base(f, EVENT_NEED, site, at);

	snprintf(ev.need_id, sizeof(ev.need_id), "%s", need);
	snprintf(ev.household, sizeof(ev.household), "%s", hh);
	snprintf(ev.category, sizeof(ev.category), "%s", category);
	if (action == NEED_ASSIGN)
		snprintf(ev.by, sizeof(ev.by), "V-3");
	ev.need = action;
	ev.due_us = due;
	return ev;
}

static struct event
call_ev(struct fx *f, const char *site, const char *hh, enum call_outcome outcome, int64_t at)
{
	struct event ev = ev_base(f, EVENT_CALL, site, at);

	snprintf(ev.household, sizeof(ev.household), "%s", hh);
	ev.outcome = outcome;
	return ev;
}

static struct event
drop_ev(struct fx *f, const char *site, const char *hh, enum dropoff_action action, int64_t at)
{
	struct event ev = ev_base(f, EVENT_DROPOFF, site, at);

	snprintf(ev.household, sizeof(ev.household), "%s", hh);
	snprintf(ev.category, sizeof(ev.category), "groceries");
	ev.dropoff = action;
	return ev;
}

/* Not delivered by its due time (09:00 in Shanghai: T0 is 08:00 there):
 * raised with the household, the category and the due time for the
 * text; its deliver resolves it. */
static void
need_overdue_past_due(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;

	ev = need_ev(f, "s1", "N-12", NEED_OPEN, "3-2-401", "groceries", T0 + HOUR, T0);
	apply(f, &ev);
	none(f);
	tick(f, T0 + HOUR);
	none(f);
	tick(f, T0 + HOUR + S);
	t = only(f, KIND_NEED_OVERDUE, "raised");
	assert_string_equal(t->a.subject, "need:N-12");
	assert_string_equal(t->a.household, "3-2-401");
	assert_string_equal(t->a.reason, "groceries by 09:00");
	assert_int_equal(t->a.severity, SEVERITY_WARNING);
	tick(f, T0 + HOUR + 2 * S); /* raised once */
	none(f);
	ev = need_ev(f, "s1", "N-12", NEED_DELIVER, "", "", 0, T0 + 90 * MIN);
	apply(f, &ev);
	t = only(f, KIND_NEED_OVERDUE, "resolved");
	assert_string_equal(t->a.reason, "delivered");
	tick(f, T0 + 5 * HOUR);
	none(f);
}

/* Not assigned within need_assign_limit of its open (a need a welfare
 * call opened has no due time): raised; an assignment after that leaves it
 * open, a cancel resolves it. Assigned in time, it never raises. */
static void
need_overdue_unassigned(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;

	ev = need_ev(f, "s1", "call-0123456789abcdef", NEED_OPEN, "3-2-401", "other", 0, T0);
	apply(f, &ev);
	ev = need_ev(f, "s1", "N-2", NEED_OPEN, "3-2-402", "medicine", 0, T0);
	apply(f, &ev);
	ev = need_ev(f, "s1", "N-2", NEED_ASSIGN, "", "", 0, T0 + HOUR);
	apply(f, &ev);
	tick(f, T0 + 2 * HOUR);
	none(f);
	tick(f, T0 + 2 * HOUR + S);
	t = only(f, KIND_NEED_OVERDUE, "raised");
	assert_string_equal(t->a.subject, "need:call-0123456789abcdef");
	assert_string_equal(t->a.reason, "other unassigned 2 h");
	ev = need_ev(f, "s1", "call-0123456789abcdef", NEED_ASSIGN, "", "", 0, T0 + 3 * HOUR);
	apply(f, &ev);
	none(f);
	tick(f, T0 + 4 * HOUR);
	none(f);
	ev = need_ev(f, "s1", "call-0123456789abcdef", NEED_CANCEL, "", "", 0, T0 + 5 * HOUR);
	apply(f, &ev);
	t = only(f, KIND_NEED_OVERDUE, "resolved");
	assert_string_equal(t->a.reason, "cancelled");
	/* the limit is a key */
	f->cfg.need_assign_limit_us = 10 * MIN;
	set_config(f);
	ev = need_ev(f, "s1", "N-3", NEED_OPEN, "3-2-403", "groceries", 0, T0 + 6 * HOUR);
	apply(f, &ev);
	tick(f, T0 + 6 * HOUR + 10 * MIN + S);
	t = only(f, KIND_NEED_OVERDUE, "raised");
	assert_string_equal(t->a.reason, "groceries unassigned 10 min");
}

/* Delivered before its due time: never raised. A step dated later gives
 * the due time whatever the order of arrival. */
static void
need_delivered_in_time(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = need_ev(f, "s1", "N-1", NEED_OPEN, "3-2-401", "groceries", T0 + HOUR, T0);
	apply(f, &ev);
	ev = need_ev(f, "s1", "N-1", NEED_ASSIGN, "", "", 0, T0 + 10 * MIN);
	apply(f, &ev);
	ev = need_ev(f, "s1", "N-1", NEED_DELIVER, "", "", 0, T0 + 50 * MIN);
	apply(f, &ev);
	none(f);
	tick(f, T0 + 5 * HOUR);
	none(f);
	/* a later assign moves the due time to 11:00; the open's 09:00,
	 * arriving after it, does not take it back */
	ev = need_ev(f, "s1", "N-4", NEED_ASSIGN, "", "", T0 + 3 * HOUR, T0 + 20 * MIN);
	apply_at(f, &ev, clk(f, T0 + 30 * MIN));
	ev = need_ev(f, "s1", "N-4", NEED_OPEN, "3-2-404", "groceries", T0 + HOUR, T0);
	apply_at(f, &ev, clk(f, T0 + 30 * MIN));
	tick(f, T0 + 3 * HOUR);
	none(f);
	tick(f, T0 + 3 * HOUR + S);
	assert_string_equal(only(f, KIND_NEED_OVERDUE, "raised")->a.reason, "groceries by 11:00");
}

/* Steps in any order: a deliver or cancel arriving before the open (a
 * bridge's backlog) ends the need for good, the late open neither follows
 * it nor raises; an assign before its open stops the assign limit. */
static void
need_steps_reordered(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = need_ev(f, "s1", "N-5", NEED_DELIVER, "", "", 0, T0 + HOUR);
	apply_at(f, &ev, clk(f, T0 + HOUR));
	ev = need_ev(f, "s1", "N-5", NEED_OPEN, "3-2-401", "groceries", T0 + 30 * MIN, T0);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR));
	none(f);
	ev = need_ev(f, "s1", "N-6", NEED_CANCEL, "", "", 0, T0 + HOUR);
	apply_at(f, &ev, clk(f, T0 + HOUR));
	ev = need_ev(f, "s1", "N-6", NEED_ASSIGN, "", "", 0, T0 + 30 * MIN);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR));
	ev = need_ev(f, "s1", "N-6", NEED_OPEN, "3-2-401", "groceries", 0, T0);
	apply_at(f, &ev, clk(f, T0 + 2 * HOUR));
	ev = need_ev(f, "s1", "N-7", NEED_ASSIGN, "", "", 0, T0 + 30 * MIN);
	apply_at(f, &ev, clk(f, T0 + HOUR));
	ev = need_ev(f, "s1", "N-7", NEED_OPEN, "3-2-401", "groceries", 0, T0);
	apply_at(f, &ev, clk(f, T0 + HOUR));
	tick(f, T0 + 10 * HOUR);
	none(f);
	/* the limit runs from the open's own time, not its arrival */
	ev = need_ev(f, "s1", "N-8", NEED_OPEN, "3-2-401", "groceries", 0, T0 + 10 * HOUR);
	apply_at(f, &ev, clk(f, T0 + 11 * HOUR));
	tick(f, T0 + 12 * HOUR + S);
	only(f, KIND_NEED_OVERDUE, "raised");
}

/* A due time is put on the monotonic clock when it comes in: a step of
 * the wall clock neither fires nor delays it. */
static void
need_due_across_wall_steps(void **state)
{
	struct fx *f = *state;
	struct event ev;

	ev = need_ev(f, "s1", "N-9", NEED_OPEN, "3-2-401", "groceries", T0 + HOUR, T0);
	apply(f, &ev);
	f->off += 3 * HOUR; /* the wall clock jumps 3 h ahead */
	tick_mono(f, T0 - (f->off - 3 * HOUR) + 30 * MIN);
	none(f);
	tick_mono(f, T0 - (f->off - 3 * HOUR) + HOUR + S);
	only(f, KIND_NEED_OVERDUE, "raised");
}

/* At most RULES_NEEDS_MAX (20,000) needs are followed: more opens leave
 * the state bounded; a done need is forgotten a day after its end. */
static void
need_state_bounded(void **state)
{
	struct fx *f = *state;
	struct event ev;
	size_t before = rules_entries(f->r), after;
	char id[32];

	for (int i = 0; i < 25000; i++) {
		snprintf(id, sizeof(id), "N-%d", i);
		ev = need_ev(f, "s1", id, NEED_OPEN, "3-2-401", "groceries", 0, T0);
		apply(f, &ev);
	}
	after = rules_entries(f->r);
	assert_int_equal(after - before, 20000);
	for (int i = 0; i < 25000; i++) {
		snprintf(id, sizeof(id), "N-%d", i);
		ev = need_ev(f, "s1", id, NEED_DELIVER, "", "", 0, T0 + MIN);
		apply(f, &ev);
	}
	none(f);
	assert_int_equal(rules_entries(f->r), after);
	tick(f, T0 + 25 * HOUR);
	assert_int_equal(rules_entries(f->r), before);
}

/* A household under an order not reached by 20:00 of its local day:
 * raised once that day (a no_answer call does not resolve it, a reached
 * one does); tomorrow's miss is another alert, naming its day. */
static void
call_missed_raised_and_reached(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;
	char first[33];

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 14 * 24 * HOUR, 0);
	/* checks in time: isolation_overdue stays out of the way */
	f->cfg.check_interval_us = 30 * 24 * HOUR;
	set_config(f);
	tick(f, T0 + 12 * HOUR - S); /* 19:59:59 */
	none(f);
	tick(f, T0 + 12 * HOUR); /* 20:00 */
	t = only(f, KIND_CALL_MISSED, "raised");
	assert_string_equal(t->a.subject, "household:3-2-401");
	assert_string_equal(t->a.household, "3-2-401");
	assert_string_equal(t->a.event_key, "call_missed:3-2-401:2020-02-16");
	assert_string_equal(t->a.reason, "20:00");
	memcpy(first, t->a.alert_id, sizeof(first));
	tick(f, T0 + 13 * HOUR);
	none(f);
	ev = call_ev(f, "s1", "3-2-401", OUTCOME_NO_ANSWER, T0 + 13 * HOUR);
	apply(f, &ev);
	none(f);
	ev = call_ev(f, "s1", "3-2-401", OUTCOME_REACHED, T0 + 14 * HOUR);
	apply(f, &ev);
	t = only(f, KIND_CALL_MISSED, "resolved");
	assert_string_equal(t->a.reason, "reached");
	tick(f, T0 + 15 * HOUR);
	none(f);
	/* the next day: not reached by its 20:00 */
	tick(f, T0 + 36 * HOUR - S);
	none(f);
	tick(f, T0 + 36 * HOUR + S);
	t = only(f, KIND_CALL_MISSED, "raised");
	assert_string_equal(t->a.event_key, "call_missed:3-2-401:2020-02-17");
	assert_string_not_equal(t->a.alert_id, first);
	/* ... nor by the day after's: yesterday's goes, today's comes */
	tick(f, T0 + 60 * HOUR + S);
	assert_int_equal(f->out.n, 2);
	assert_string_equal(f->out.t[0].what, "resolved");
	assert_string_equal(f->out.t[0].a.reason, "next day");
	assert_string_equal(f->out.t[1].what, "raised");
	assert_string_equal(f->out.t[1].a.event_key, "call_missed:3-2-401:2020-02-18");
	/* a call of the day before arriving late resolves nothing of today */
	ev = call_ev(f, "s1", "3-2-401", OUTCOME_REACHED, T0 + 30 * HOUR);
	apply_at(f, &ev, clk(f, T0 + 61 * HOUR));
	none(f);
	ev = call_ev(f, "s1", "3-2-401", OUTCOME_COUNSELLING, T0 + 61 * HOUR);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_CALL_MISSED, "resolved")->a.reason, "reached");
}

/* Reached before the deadline (needs_help and counselling count: the
 * person answered): not raised. Not under isolation, or under an order
 * that started after that day's deadline: not due that day. */
static void
call_missed_not_due(void **state)
{
	struct fx *f = *state;
	struct event ev;

	f->cfg.check_interval_us = 30 * 24 * HOUR;
	set_config(f);
	add_household(f->reg, "s1", "3-2-401");
	add_household(f->reg, "s1", "3-2-402");
	add_household(f->reg, "s1", "3-2-403");
	add_household(f->reg, "s1", "3-2-404");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 14 * 24 * HOUR, 0);
	add_order(f->reg, "s1", "3-2-402", "", T0 - 24 * HOUR, T0 + 14 * 24 * HOUR, 0);
	/* starts at 21:00, after the day's 20:00 */
	add_order(f->reg, "s1", "3-2-403", "", T0 + 13 * HOUR, T0 + 14 * 24 * HOUR, 0);
	ev = call_ev(f, "s1", "3-2-401", OUTCOME_NEEDS_HELP, T0 + HOUR);
	apply(f, &ev);
	ev = call_ev(f, "s1", "3-2-402", OUTCOME_COUNSELLING, T0 + 2 * HOUR);
	apply(f, &ev);
	ev = call_ev(f, "s1", "3-2-404", OUTCOME_NO_ANSWER, T0 + 2 * HOUR); /* no order */
	apply(f, &ev);
	tick(f, T0 + 12 * HOUR + S);
	none(f);
	tick(f, T0 + 15 * HOUR);
	none(f);
	/* the next day all three are due: yesterday's calls do not count */
	tick(f, T0 + 36 * HOUR + S);
	assert_int_equal(f->out.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(f->out.t[i].a.kind, KIND_CALL_MISSED);
}

/* The deadline is the site's local time (America/New_York: 20:00 EST is
 * 01:00 UTC the next day); an order that ends resolves the alert. */
static void
call_missed_site_time(void **state)
{
	struct fx *f = *state;

	f->cfg.check_interval_us = 30 * 24 * HOUR;
	set_config(f);
	add_site(f->reg, "ny", "America/New_York");
	add_household(f->reg, "ny", "7-1");
	/* T0 is 2020-02-15 19:00 in New York; the order ends 2020-02-17 00:00 UTC */
	add_order(f->reg, "ny", "7-1", "", T0 - 24 * HOUR, T0 + 24 * HOUR, 0);
	/* and one at a Shanghai site (the default zone), judged in the same ticks */
	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 48 * HOUR, 0);
	tick(f, T0 + HOUR - S);
	none(f);
	tick(f, T0 + HOUR);
	assert_string_equal(only(f, KIND_CALL_MISSED, "raised")->a.event_key,
			    "call_missed:7-1:2020-02-15");
	tick(f, T0 + 12 * HOUR); /* 20:00 in Shanghai, 07:00 in New York */
	assert_string_equal(only(f, KIND_CALL_MISSED, "raised")->a.event_key,
			    "call_missed:3-2-401:2020-02-16");
	tick(f, T0 + 24 * HOUR);
	assert_string_equal(only(f, KIND_CALL_MISSED, "resolved")->a.reason, "order ended");
}

/* A delivery for a household under isolation uncollected for
 * dropoff_limit: raised; its collection resolves it. Never for a
 * household not under isolation. */
static void
dropoff_uncollected_raised_and_collected(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;

	f->cfg.check_interval_us = 30 * 24 * HOUR; /* isolation_overdue out of the way */
	set_config(f);

	add_household(f->reg, "s1", "3-2-401");
	add_household(f->reg, "s1", "3-2-402");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 24 * HOUR, 0);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_PLACED, T0);
	apply(f, &ev);
	ev = drop_ev(f, "s1", "3-2-402", DROPOFF_PLACED, T0);
	apply(f, &ev);
	none(f);
	tick(f, T0 + 2 * HOUR);
	none(f);
	tick(f, T0 + 2 * HOUR + S);
	t = only(f, KIND_DROPOFF_UNCOLLECTED, "raised");
	assert_string_equal(t->a.subject, "household:3-2-401");
	assert_string_equal(t->a.household, "3-2-401");
	assert_string_equal(t->a.reason, "2 h");
	tick(f, T0 + 3 * HOUR);
	none(f);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_COLLECTED, T0 + 3 * HOUR + MIN);
	apply(f, &ev);
	assert_string_equal(only(f, KIND_DROPOFF_UNCOLLECTED, "resolved")->a.reason, "collected");
	tick(f, T0 + 6 * HOUR);
	none(f);
}

/* A collection collects everything placed up to its time, whatever the
 * order of arrival: a placement dated before a collection that came first
 * is never timed; one dated after it is timed on its own; a collection
 * dated before a delivery already late leaves the alert open. */
static void
dropoff_reordered(void **state)
{
	struct fx *f = *state;
	struct event ev;

	f->cfg.check_interval_us = 30 * 24 * HOUR; /* isolation_overdue out of the way */
	set_config(f);

	add_household(f->reg, "s1", "3-2-401");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 48 * HOUR, 0);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_COLLECTED, T0 + 30 * MIN);
	apply(f, &ev);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_PLACED, T0);
	apply_at(f, &ev, clk(f, T0 + 40 * MIN));
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_PLACED, T0 + 20 * MIN);
	apply_at(f, &ev, clk(f, T0 + 40 * MIN));
	tick(f, T0 + 5 * HOUR);
	none(f);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_PLACED, T0 + 6 * HOUR);
	apply(f, &ev);
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_PLACED, T0 + 7 * HOUR);
	apply(f, &ev);
	tick(f, T0 + 8 * HOUR + S);
	only(f, KIND_DROPOFF_UNCOLLECTED, "raised");
	/* a collection at 6:30 in: the 6 h one is collected, the 7 h one is
	 * not yet late: resolved */
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_COLLECTED, T0 + 6 * HOUR + 30 * MIN);
	apply_at(f, &ev, clk(f, T0 + 8 * HOUR + 2 * S));
	only(f, KIND_DROPOFF_UNCOLLECTED, "resolved");
	tick(f, T0 + 9 * HOUR + S);
	only(f, KIND_DROPOFF_UNCOLLECTED, "raised");
	/* an older collection that came late leaves the late one late */
	ev = drop_ev(f, "s1", "3-2-401", DROPOFF_COLLECTED, T0 + 6 * HOUR + 40 * MIN);
	apply_at(f, &ev, clk(f, T0 + 9 * HOUR + 2 * S));
	none(f);
}

/* The people work's state restored at start (G3): an open need, its due
 * time and category; a need done (its late open raises nothing); a
 * household's reach today; an uncollected delivery, and one a restored
 * collection took. */
static void
people_restored(void **state)
{
	struct fx *f = *state;
	struct event ev;
	const struct alert_transition *t;

	f->cfg.check_interval_us = 30 * 24 * HOUR;
	set_config(f);
	add_household(f->reg, "s1", "3-2-401");
	add_household(f->reg, "s1", "3-2-402");
	add_order(f->reg, "s1", "3-2-401", "", T0 - 24 * HOUR, T0 + 48 * HOUR, 0);
	add_order(f->reg, "s1", "3-2-402", "", T0 - 24 * HOUR, T0 + 48 * HOUR, 0);
	restore_seen(f, "need_open", "s1", "N-1", "3-2-401", T0 - HOUR, T0);
	restore_seen(f, "need_category", "s1", "N-1", "medicine", 0, T0);
	restore_seen(f, "need_due", "s1", "N-1", "", T0 + 3 * HOUR, T0);
	restore_seen(f, "need_assigned", "s1", "N-1", "", T0 - 30 * MIN, T0);
	restore_seen(f, "need_open", "s1", "N-2", "3-2-402", T0 - HOUR, T0);
	restore_seen(f, "need_done", "s1", "N-3", "", T0 - HOUR, T0);
	restore_seen(f, "welfare_reached", "s1", "3-2-401", "", T0 - HOUR, T0);
	restore_seen(f, "dropoff_placed", "s1", "3-2-401", "groceries", T0 - 30 * MIN, T0);
	restore_seen(f, "dropoff_placed", "s1", "3-2-402", "groceries", T0 - 30 * MIN, T0);
	restore_seen(f, "dropoff_collected", "s1", "3-2-402", "", T0 - 20 * MIN, T0);
	assert_int_equal(restore_seen_in(f->r, f->reg, "welfare_reached", "s1", "9-9", "",
					 T0 - HOUR, clk(f, T0)),
			 1); /* no order: not kept */
	ev = need_ev(f, "s1", "N-3", NEED_OPEN, "3-2-401", "groceries", 0, T0 - 2 * HOUR);
	apply_at(f, &ev, clk(f, T0 + MIN));
	none(f);
	tick(f, T0 + HOUR + S); /* N-2 open 2 h, unassigned */
	t = only(f, KIND_NEED_OVERDUE, "raised");
	assert_string_equal(t->a.subject, "need:N-2");
	tick(f, T0 + 90 * MIN + S); /* the delivery for 3-2-401 placed at 07:30 */
	t = only(f, KIND_DROPOFF_UNCOLLECTED, "raised");
	assert_string_equal(t->a.household, "3-2-401");
	tick(f, T0 + 3 * HOUR + S); /* N-1 assigned, due 11:00 */
	t = only(f, KIND_NEED_OVERDUE, "raised");
	assert_string_equal(t->a.subject, "need:N-1");
	assert_string_equal(t->a.reason, "medicine by 11:00");
	tick(f, T0 + 12 * HOUR + S); /* 3-2-401 reached today: only 3-2-402 */
	t = only(f, KIND_CALL_MISSED, "raised");
	assert_string_equal(t->a.household, "3-2-402");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(fever_severity_and_fields),
		T(open_counts_by_state),
		T(open_counts_restored_odd_site),
		T(fever_never_from_implausible_or_missing),
		T(fever_subject_person_card_gate),
		T(fever_after_operator_resolve_and_restore),
		T(fever_anonymous_reused_key),
		T(fever_rechecked_within_window),
		T(fever_from_isolation_check),
		T(dedupe_and_repeat_interval),
		T(alert_id_stable_across_engines),
		T(ack_then_resolve),
		T(ack_unknown_or_other_site),
		T(open_alerts_listed),
		T(sealed_gate_event_status_and_reseal),
		T(gate_rules_without_reading),
		T(gate_silent_timer),
		T(unknown_and_revoked_cards),
		T(isolation_breach_outward_only),
		T(exit_quota_window),
		T(exit_quota_carer_exception),
		T(card_exception_once),
		T(card_exception_across_restart),
		T(card_exception_threshold_and_fold),
		T(isolation_overdue_and_checked_in),
		T(isolation_overdue_household_and_default_interval),
		T(isolation_late_checks),
		T(isolation_symptoms),
		cmocka_unit_test(daytime_elapsed),
		T(disinfection_overdue_daytime),
		T(disinfection_known_before_start),
		T(disinfection_site_zone_and_default_interval),
		T(hotline_limits),
		T(hotline_resolved_before_limit),
		T(hotline_resolve_before_open),
		T(hotline_resolved_bound),
		T(hotline_steps_in_any_order),
		T(sealed_gate_states_out_of_order),
		T(sealed_gate_states_in_any_order),
		T(sealed_gate_state_restored),
		T(fever_readings_in_any_order),
		T(acks_in_any_order),
		T(fever_readings_shuffled),
		T(backlog_raise_and_recover),
		T(restored_alert_continues),
		T(count_stops_at_the_column_maximum),
		T(restored_seen_times),
		T(gate_silent_wall_clock_set_back),
		T(gate_silent_wall_clock_set_forward),
		T(gate_silent_from_processing),
		T(hotline_limit_across_wall_steps),
		T(isolation_overdue_across_wall_steps),
		T(disinfection_across_wall_steps),
		T(disinfection_night_after_a_step),
		T(exit_quota_window_across_wall_steps),
		T(repeat_interval_across_wall_steps),
		T(restored_times_after_the_clock_was_set_back),
		T(monotonic_origin_after_a_boot),
		T(fold_past_the_bound),
		T(aggregate_resolved_when_quiet),
		T(fold_estimate_of_a_flood),
		T(fold_timer_kind),
		T(restore_respects_the_bound),
		T(seen_state_bounded),
		T(need_overdue_past_due),
		T(need_overdue_unassigned),
		T(need_delivered_in_time),
		T(need_steps_reordered),
		T(need_due_across_wall_steps),
		T(need_state_bounded),
		T(call_missed_raised_and_reached),
		T(call_missed_not_due),
		T(call_missed_site_time),
		T(dropoff_uncollected_raised_and_collected),
		T(dropoff_reordered),
		T(people_restored),
		cmocka_unit_test(names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
