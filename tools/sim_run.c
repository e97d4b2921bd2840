/* sim_run.c - `cordon-sim run`: one simulated day of the reference compound
 * after another, compressed into --day, plus the injected faults.
 *
 * Every message is scheduled at a real offset from the start (seconds) and
 * built when it is due, with the wall clock as its device time. A day is
 * generated when the first message of the previous one is due past its end,
 * so the schedule is a heap (by offset, then by creation order). The PRNG
 * draws happen when a day is generated, never when a message is sent: the
 * same --seed gives the same messages in the same order. The people work
 * (welfare calls, needs, drop-offs) draws from a stream of its own, so the
 * rest of a day is what it was before it was added.
 *
 * Time compression: a simulated hour is --day / 24 of real time, the device
 * times are the wall clock, and a need's `due` is the wall-clock time its
 * offset will be. The daily welfare calls (like the isolation checks) come
 * in the first simulated hours of each day, so that a call deadline a minute
 * or so after the start finds every household called but the missed_call
 * fault's. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "clocks.h"
#include "sim.h"
#include "topics.h"

/* What a message counts for: the table its rows go to. */
enum kind {
	K_GATE_EVENTS,
	K_GATE_STATUS,
	K_DISINFECTIONS,
	K_HOTLINE_EVENTS,
	K_ISOLATION_CHECKS,
	K_NEED_EVENTS,
	K_WELFARE_CALLS,
	K_DROPOFFS,
	K_REJECTS,
	N_KINDS,
	/* a needs_help call: a welfare_calls row, and the need_events row of
	 * the need cordond opens for it (folded by fold_help_calls()) */
	K_HELP_CALLS = N_KINDS,
};
static const char *const kind_names[N_KINDS] = {
	"gate_events", "gate_status",	"disinfections", "hotline_events", "isolation_checks",
	"need_events", "welfare_calls", "dropoffs",	 "rejects",
};
#define NO_LABEL 0
#define LABEL(f) ((f) + 1)
_Static_assert(K_HELP_CALLS < PUB_KINDS, "a kind is 4 bits of a publish's tag");
_Static_assert(SIM_N_FAULTS < PUB_LABELS, "a label is 4 bits of a publish's tag");

/* The malformed fault's payloads: topic kind and id, payload. */
static const struct {
	enum topic_kind kind;
	const char *id;
	const char *payload;
} bad_payloads[] = {
	{ TOPIC_GATE_EVENT, SIM_OPEN_GATE,
	  "{\"id\":\"BAD-1\",\"ts\":\"2020-02-16T18:32:00+08:00\",\"card\":" },
	/* no reading and nobody named: not a pass (with a card it would be
	 * a pass without a reading, docs/topics.md) */
	{ TOPIC_GATE_EVENT, SIM_OPEN_GATE,
	  "{\"id\":\"BAD-2\",\"ts\":\"2020-02-16T18:32:00+08:00\",\"direction\":\"in\"}" },
	{ TOPIC_GATE_EVENT, SIM_OPEN_GATE, "{\"id\":\"BAD-3\",\"card\":\"C-1\",\"temp_c\":36.6}" },
	{ TOPIC_GATE_EVENT, SIM_OPEN_GATE, "\xff\xfe not utf-8" },
	{ TOPIC_GATE_STATUS, SIM_OPEN_GATE, "{\"state\":\"exploded\"}" },
	{ TOPIC_DISINFECTION, "Z01", "sprayed" },
};
#define N_BAD (sizeof(bad_payloads) / sizeof(bad_payloads[0]))

enum mtype {
	M_CANONICAL,
	M_HIKVISION,
	M_WECOM,
	M_STATUS,
	M_RAW,
	M_DISINFECTION,
	M_HOTLINE,
	M_CHECK,
	M_NEED,
	M_CALL,
	M_DROPOFF
};

struct reading {
	char user[SIM_ID_MAX + 2];
	double temp;
};

/* One scheduled message; which fields count depends on the type. */
struct msg {
	double at;    /* real offset from the start, s */
	uint64_t seq; /* creation order, breaks ties */
	uint8_t type, kind, rows, label;
	char id[48]; /* record id; status id; call id; need id */
	char gate[8];
	char ref[SIM_ID_MAX]; /* card, zone, household */
	char by[16];	      /* need, call, drop-off: volunteer or operator; "" none */
	char call[24];	      /* need (open): the hotline call that opened it; "" none */
	const char *what;     /* direction, state, crew, action, outcome */
	const char *category; /* hotline, need (open), call (needs_help); drop-off: item */
	const char *note;     /* hotline, need, call */
	double due;	      /* need (open): real offset it is due at, s; < 0 none */
	double temp, skew;
	bool flag;   /* mask, urgent, symptoms */
	int step;    /* hotline update number; need step id */
	long serial; /* Hikvision */
	int bad;     /* index into bad_payloads */
	int nread;
	struct reading rd[3];
};

/* A drop-off a day plans for an isolated household, before they are
 * spread so that one is collected before the next is placed. */
struct drop {
	double t; /* simulated hours from the day's start */
	int iso;  /* index into reg.isolated */
	const char *item;
	char by[16];
};

struct sim {
	const char *site;
	char root[96];
	long long seed;
	double day, duration, fever_rate, silent_at, silent_for;
	int passes_per_day, calls_per_day;
	unsigned faults; /* 1 << enum sim_fault */
	struct rng rng;
	struct rng people; /* welfare calls, needs, drop-offs */
	struct reg reg;
	int *iso_of;	       /* per household: its index in reg.isolated, or -1 */
	int64_t start_wall_us; /* the wall clock at offset 0 (a need's due) */
	int needs, wcalls, drops;
	struct drop *plan; /* the day's drop-offs */
	size_t nplan, capplan;
	int *order; /* households that are not isolated, shuffled */
	size_t norder, next_out;
	int *out; /* households out of the compound */
	size_t nout;
	bool *is_out;
	int hb[SIM_N_GATES + 1]; /* heartbeats sent per gate */
	int calls;
	uint64_t nseq;
	uint64_t *wecom_seen; /* hashes of WeCom payloads built */
	size_t nwecom, capwecom;
	struct msg **heap;
	size_t nheap, capheap;
	uint64_t counter;
};

static bool
has(const struct sim *s, enum sim_fault f)
{
	return s->faults & (1u << f);
}

/* ---------------------------------------------------------------- the heap */

static bool
before(const struct msg *a, const struct msg *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

/* A new message at offset `at`, pushed on the schedule; NULL when out of memory. */
static struct msg *
push(struct sim *s, double at, enum mtype type, enum kind kind)
{
	struct msg *m;
	size_t i;

	if (s->nheap == s->capheap) {
		size_t cap = s->capheap ? s->capheap * 2 : 8192;
		struct msg **h = realloc(s->heap, cap * sizeof(*h));

		if (!h)
			return NULL;
		s->heap = h;
		s->capheap = cap;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->at = at;
	m->seq = ++s->counter;
	m->type = (uint8_t)type;
	m->kind = (uint8_t)kind;
	m->rows = 1;
	for (i = s->nheap++; i > 0 && before(m, s->heap[(i - 1) / 2]); i = (i - 1) / 2)
		s->heap[i] = s->heap[(i - 1) / 2];
	s->heap[i] = m;
	return m;
}

static struct msg *
pop(struct sim *s)
{
	struct msg *top = s->heap[0], *last = s->heap[--s->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && before(s->heap[c + 1], s->heap[c]))
			c++;
		if (!before(s->heap[c], last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* ---------------------------------------------------------------- messages */

static double
round1(double t)
{
	return floor(t * 10.0 + 0.5) / 10.0;
}

/* A reading: febrile with probability fever_rate, else normal (< 37.2). */
static double
temperature(struct sim *s, double fever_rate)
{
	if (rng_real(&s->rng) < fever_rate)
		return round1(rng_uniform(&s->rng, 37.4, 39.2));
	for (;;) {
		double t = rng_gauss(&s->rng, 36.5, 0.3);

		if (t < 37.2)
			return round1(t < 35.5 ? 35.5 : t);
	}
}

static bool
in_silence(const struct sim *s, const char *gate, double at)
{
	return has(s, F_SILENT) && strcmp(gate, SIM_OPEN_GATE) == 0 && s->silent_at <= at &&
		at < s->silent_at + s->silent_for;
}

static struct msg *
canonical(struct sim *s, double at, const char *card, const char *direction, double temp,
	  double skew, int label)
{
	struct msg *m = push(s, at, M_CANONICAL, K_GATE_EVENTS);

	if (!m)
		return NULL;
	snprintf(m->gate, sizeof(m->gate), "%s", SIM_OPEN_GATE);
	snprintf(m->id, sizeof(m->id), "%s-%07llu", m->gate, (unsigned long long)++s->nseq);
	snprintf(m->ref, sizeof(m->ref), "%s", card);
	m->what = direction;
	m->temp = temp;
	m->skew = skew;
	m->flag = rng_real(&s->rng) < 0.97;
	m->label = (uint8_t)label;
	return m;
}

static struct msg *
hikvision(struct sim *s, double at, const char *card, double temp)
{
	struct msg *m = push(s, at, M_HIKVISION, K_GATE_EVENTS);

	if (!m)
		return NULL;
	m->serial = (long)++s->nseq;
	snprintf(m->ref, sizeof(m->ref), "%s", card);
	m->temp = temp;
	m->flag = rng_real(&s->rng) < 0.97;
	return m;
}

static struct msg *
status(struct sim *s, double at, int gate, const char *state, int label)
{
	struct msg *m = push(s, at, M_STATUS, K_GATE_STATUS);

	if (!m)
		return NULL;
	s->hb[gate]++;
	snprintf(m->gate, sizeof(m->gate), "G%02d", gate);
	snprintf(m->id, sizeof(m->id), "ST-%s-%06d", m->gate, s->hb[gate]);
	m->what = state;
	m->label = (uint8_t)label;
	return m;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- the people work */

static const char *const need_categories[] = { "groceries", "medicine", "elderly_care",
					       "counselling", "other" };

/* The item a drop-off of a need's category holds. */
static const char *
item_of(const char *category)
{
	return strcmp(category, "medicine") == 0   ? "medicine" :
		strcmp(category, "groceries") == 0 ? "groceries" :
						     "supplies";
}

static void
volunteer(struct sim *s, char *buf, size_t len)
{
	reg_volunteer(buf, len, (int)rng_below(&s->people, SIM_N_VOLUNTEERS));
}

/* The need cordond opens for a needs_help call (norm_call(), docs/topics.md):
 * "call-" and 16 hex digits of XXH3-64 of the call's event key
 * "<site>/<household>/<call id>". */
static void
call_need_id(char *buf, size_t len, const char *site, const char *household, const char *call)
{
	char key[3 * SIM_ID_MAX + 4];
	int n = snprintf(key, sizeof(key), "%s/%s/%s", site, household, call);

	snprintf(buf, len, "call-%016llx",
		 (unsigned long long)XXH3_64bits(key, n > 0 ? (size_t)n : 0));
}

/* A step of a need at `at` (real offset). NULL when out of memory. */
static struct msg *
need_step(struct sim *s, double at, const char *need_id, int step, const char *action,
	  const char *by, int label)
{
	struct msg *m = push(s, at, M_NEED, K_NEED_EVENTS);

	if (!m)
		return NULL;
	snprintf(m->id, sizeof(m->id), "%s", need_id);
	m->step = step;
	m->what = action;
	m->due = -1;
	if (by)
		snprintf(m->by, sizeof(m->by), "%s", by);
	m->label = (uint8_t)label;
	return m;
}

/* Plans a drop-off for household hh (an index into reg.hh) at simulated
 * hour t of the day, when it is isolated (and not the uncollected fault's,
 * whose only drop-off is the fault's). 0 or -ENOMEM. */
static int
plan_drop(struct sim *s, int hh, double t, const char *item, const char *by)
{
	int iso = s->iso_of[hh];
	struct drop *d;

	if (iso < 0 || (iso == 4 && has(s, F_UNCOLLECTED)))
		return 0;
	if (s->nplan == s->capplan) {
		size_t cap = s->capplan ? s->capplan * 2 : 64;
		struct drop *n = realloc(s->plan, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->plan = n;
		s->capplan = cap;
	}
	d = &s->plan[s->nplan++];
	d->t = t;
	d->iso = iso;
	d->item = item;
	snprintf(d->by, sizeof(d->by), "%s", by);
	return 0;
}

/* Assign and deliver of a need opened at simulated hour t0 (a day from
 * `base`), delivered at least an hour before due_h (simulated hours; < 0:
 * no due), with a drop-off when its household is isolated. 0 or -ENOMEM. */
static int
need_follow(struct sim *s, double base, const char *need_id, int hh, const char *category,
	    double t0, double due_h)
{
	double hour = s->day / 24.0, ta = t0 + rng_uniform(&s->people, 0.1, 1.0), td;
	char vol[16];

	volunteer(s, vol, sizeof(vol));
	td = due_h < 0 ?
		ta + rng_uniform(&s->people, 0.3, 2.0) :
		ta + rng_uniform(&s->people, 0.3, due_h - 1.0 - ta > 0.4 ? due_h - 1.0 - ta : 0.4);
	if (!need_step(s, base + ta * hour, need_id, 2, "assign", vol, NO_LABEL) ||
	    !need_step(s, base + td * hour, need_id, 3, "deliver", vol, NO_LABEL))
		return -ENOMEM;
	/* counselling is given on the phone: nothing to drop off */
	return strcmp(category, "counselling") == 0 ? 0 :
						      plan_drop(s, hh, td, item_of(category), vol);
}

/* A need opened by the hotline call `call` ("" none) or by the office, for
 * household hh at simulated hour t0, due some hours later; then assigned
 * and delivered before its due, or (rarely) cancelled. 0 or -ENOMEM. */
static int
need(struct sim *s, double base, int hh, double t0, const char *category, const char *call)
{
	double hour = s->day / 24.0, due_h = t0 + rng_uniform(&s->people, 3.0, 6.0);
	char need_id[16];
	struct msg *m;

	snprintf(need_id, sizeof(need_id), "N-%05d", ++s->needs);
	if (!(m = need_step(s, base + t0 * hour, need_id, 1, "open", NULL, NO_LABEL)))
		return -ENOMEM;
	snprintf(m->ref, sizeof(m->ref), "%s", s->reg.hh[hh].id);
	snprintf(m->call, sizeof(m->call), "%s", call);
	m->category = category;
	m->due = base + due_h * hour;
	if (!call[0] && rng_real(&s->people) < 0.05) {
		m = need_step(s, base + (t0 + rng_uniform(&s->people, 0.2, 1.0)) * hour, need_id, 2,
			      "cancel", NULL, NO_LABEL);
		if (m)
			m->note = "the family brought it";
		return m ? 0 : -ENOMEM;
	}
	return need_follow(s, base, need_id, hh, category, t0, due_h);
}

static int
cmp_drop(const void *a, const void *b)
{
	const struct drop *x = a, *y = b;

	return (x->t > y->t) - (x->t < y->t);
}

/* The people work of one simulated day from `base`, but the needs the
 * hotline opens (day()): the daily welfare calls, the office's needs,
 * parcels, and every drop-off planned, each collected before the household's
 * next is placed. 0 or -ENOMEM. */
static int
people(struct sim *s, double base)
{
	static const char *const help[] = { "groceries", "medicine", "elderly_care" };
	static const char *const parcels[] = { "groceries", "parcel", "meal" };
	double hour = s->day / 24.0, busy[SIM_N_ISOLATED];
	struct msg *m;

	/* the welfare calls, in the first simulated hours (see the top) */
	for (int i = 0; i < SIM_N_ISOLATED; i++) {
		int hh = s->reg.isolated[i];
		double t = (i + 0.5) * 0.05, u = rng_real(&s->people);
		const char *outcome = u < 0.78 ? "reached" :
			u < 0.90	       ? "no_answer" :
			u < 0.97	       ? "needs_help" :
						 "counselling";

		if (i == 3 && has(s, F_MISSED_CALL))
			continue;
		for (int attempt = 0; attempt < 2; attempt++) {
			bool needs_help = strcmp(outcome, "needs_help") == 0;

			if (!(m = push(s, base + t * hour, M_CALL,
				       needs_help ? K_HELP_CALLS : K_WELFARE_CALLS)))
				return -ENOMEM;
			snprintf(m->id, sizeof(m->id), "W-%06d", ++s->wcalls);
			snprintf(m->ref, sizeof(m->ref), "%s", s->reg.hh[hh].id);
			snprintf(m->by, sizeof(m->by), "op-%d", i % 3 + 1);
			m->what = outcome;
			if (needs_help) {
				char need_id[32];

				m->category = help[rng_below(&s->people, 3)];
				m->note = "asked for a delivery";
				call_need_id(need_id, sizeof(need_id), s->site, m->ref, m->id);
				if (need_follow(s, base, need_id, hh, m->category, t, -1) < 0)
					return -ENOMEM;
			}
			if (strcmp(outcome, "no_answer") != 0)
				break;
			/* called again an hour or two later, and reached */
			t += rng_uniform(&s->people, 1.0, 2.0);
			outcome = "reached";
		}
	}
	/* the office's needs for isolated households */
	for (int k = 0; k < 6; k++) {
		int hh = s->reg.isolated[rng_below(&s->people, SIM_N_ISOLATED)];
		const char *category = need_categories[rng_below(&s->people, 5)];

		if (need(s, base, hh, rng_uniform(&s->people, 7, 17), category, "") < 0)
			return -ENOMEM;
	}
	/* parcels from families for isolated households */
	for (int i = 0; i < SIM_N_ISOLATED; i++) {
		char vol[16];
		double t = rng_uniform(&s->people, 8, 20);
		const char *item = parcels[rng_below(&s->people, 3)];

		volunteer(s, vol, sizeof(vol));
		if (rng_real(&s->people) < 0.4 &&
		    plan_drop(s, s->reg.isolated[i], t, item, vol) < 0)
			return -ENOMEM;
	}
	/* the drop-offs, one at a time per household: placed, collected */
	qsort(s->plan, s->nplan, sizeof(*s->plan), cmp_drop);
	for (int i = 0; i < SIM_N_ISOLATED; i++)
		busy[i] = 0;
	for (size_t k = 0; k < s->nplan; k++) {
		const struct drop *d = &s->plan[k];
		double placed = d->t > busy[d->iso] + 0.05 ? d->t : busy[d->iso] + 0.05;
		double collected = placed + rng_uniform(&s->people, 0.1, 1.0);

		for (int step = 0; step < 2; step++) {
			if (!(m = push(s, base + (step ? collected : placed) * hour, M_DROPOFF,
				       K_DROPOFFS)))
				return -ENOMEM;
			snprintf(m->id, sizeof(m->id), "P-%06d", ++s->drops);
			snprintf(m->ref, sizeof(m->ref), "%s",
				 s->reg.hh[s->reg.isolated[d->iso]].id);
			m->category = d->item;
			m->what = step ? "collected" : "placed";
			if (!step)
				snprintf(m->by, sizeof(m->by), "%s", d->by);
		}
		busy[d->iso] = collected;
	}
	s->nplan = 0;
	return 0;
}

/* One simulated day from real offset `base`. 0 or -ENOMEM. */
static int
day(struct sim *s, double base)
{
	static const char *const categories[] = { "medical", "supplies", "supplies", "waste",
						  "other" };
	static const char *const crews[] = { "crew-1", "crew-2", "crew-3", "crew-4" };
	double hour = s->day / 24.0, *times;
	struct reading pending[3];
	int npending = 0;
	struct msg *m;

	/* gate passes at G01, mostly between 06:00 and 22:00 */
	times = malloc((size_t)(s->passes_per_day ? s->passes_per_day : 1) * sizeof(*times));
	if (!times)
		return -ENOMEM;
	for (int i = 0; i < s->passes_per_day; i++)
		times[i] = rng_real(&s->rng) < 0.9 ? rng_uniform(&s->rng, 6, 22) :
						     rng_uniform(&s->rng, 0, 24);
	qsort(times, (size_t)s->passes_per_day, sizeof(*times), cmp_double);
	for (int i = 0; i < s->passes_per_day; i++) {
		double at = base + times[i] * hour, temp;
		const char *direction;
		const struct household *h;
		int hh;

		if (in_silence(s, SIM_OPEN_GATE, at))
			continue;
		temp = temperature(s, s->fever_rate);
		if (s->nout && rng_real(&s->rng) < 0.5) {
			size_t k = (size_t)rng_below(&s->rng, s->nout);

			hh = s->out[k];
			s->out[k] = s->out[--s->nout];
			s->is_out[hh] = false;
			direction = "in";
		} else {
			hh = s->order[s->next_out++ % s->norder];
			if (s->is_out[hh])
				continue;
			s->out[s->nout++] = hh;
			s->is_out[hh] = true;
			direction = "out";
		}
		h = &s->reg.hh[hh];
		const char *card = h->card[rng_below(&s->rng, (uint64_t)h->ncards)];
		double fmt = rng_real(&s->rng);

		if (direction[0] == 'i' && fmt < 0.10) {
			m = hikvision(s, at, card, temp);
		} else if (direction[0] == 'i' && fmt < 0.15) {
			snprintf(pending[npending].user, sizeof(pending[npending].user), "u-%s",
				 h->id);
			pending[npending++].temp = temp;
			if (npending < rng_range(&s->rng, 1, 3))
				continue;
			if ((m = push(s, at, M_WECOM, K_GATE_EVENTS))) {
				memcpy(m->rd, pending, sizeof(pending));
				m->nread = npending;
				m->rows = (uint8_t)npending;
			}
			npending = 0;
		} else {
			m = canonical(s, at, card, direction, temp, 0, NO_LABEL);
		}
		if (!m)
			goto nomem;
	}
	free(times);
	times = NULL;
	if (npending) {
		if (!(m = push(s, base + 22 * hour, M_WECOM, K_GATE_EVENTS)))
			goto nomem;
		memcpy(m->rd, pending, sizeof(pending));
		m->nread = npending;
		m->rows = (uint8_t)npending;
	}
	/* heartbeats: every gate, every simulated hour */
	for (int k = 0; k < 24; k++)
		for (int g = 1; g <= SIM_N_GATES; g++) {
			double at = base + (k + (double)(g - 1) / SIM_N_GATES) * hour;
			char gate[8];

			snprintf(gate, sizeof(gate), "G%02d", g);
			if (!in_silence(s, gate, at) && !status(s, at, g, "online", NO_LABEL))
				goto nomem;
		}
	/* disinfection rounds: every zone every 4 simulated hours */
	for (int z = 0; z < SIM_N_ZONES; z++)
		for (int k = 0; k < 6; k++) {
			double at = base + (k * 4 + (double)z / SIM_N_ZONES) * hour;

			if (!(m = push(s, at, M_DISINFECTION, K_DISINFECTIONS)))
				goto nomem;
			snprintf(m->ref, sizeof(m->ref), "Z%02d", z + 1);
			snprintf(m->id, sizeof(m->id), "D-%.8s-%07llu", m->ref,
				 (unsigned long long)++s->nseq);
			m->what = crews[z % 4];
		}
	/* hotline calls: open, maybe updates, resolve */
	for (int c = 0; c < s->calls_per_day; c++) {
		int hi = (int)rng_below(&s->rng, s->reg.n);
		const char *hh = s->reg.hh[hi].id;
		const char *cat = categories[rng_below(&s->rng, 5)];
		bool urgent = strcmp(cat, "medical") == 0 && rng_real(&s->rng) < 0.4;
		double t = rng_uniform(&s->rng, 7, 21), when[4];
		int nsteps = 1, updates = rng_range(&s->rng, 0, 2);
		char call[16];

		snprintf(call, sizeof(call), "H-%05d", ++s->calls);
		when[0] = t;
		for (int u = 0; u < updates; u++) {
			t += rng_expo(&s->rng, 2.0);
			when[nsteps++] = t;
		}
		when[nsteps] = t + rng_expo(&s->rng, 2.0);
		nsteps++;
		for (int i = 0; i < nsteps; i++) {
			double th = when[i] < 23.99 ? when[i] : 23.99;

			if (!(m = push(s, base + th * hour, M_HOTLINE, K_HOTLINE_EVENTS)))
				goto nomem;
			snprintf(m->id, sizeof(m->id), "%s", call);
			snprintf(m->ref, sizeof(m->ref), "%s", hh);
			m->step = i + 1;
			m->what = i == 0 ? "open" : i == nsteps - 1 ? "resolve" : "update";
			m->category = cat;
			m->note = i == 0 ? NULL : "called back";
			m->flag = urgent;
		}
		/* half the calls for supplies, or medical and not urgent, open a need */
		if ((strcmp(cat, "supplies") == 0 || (strcmp(cat, "medical") == 0 && !urgent)) &&
		    rng_real(&s->people) < 0.5 &&
		    need(s, base, hi, when[0] + 0.05, cat[0] == 's' ? "groceries" : "medicine",
			 call) < 0)
			goto nomem;
	}
	/* isolation checks: twice a simulated day, the first round right at the start */
	for (int i = 0; i < SIM_N_ISOLATED; i++) {
		const char *hh = s->reg.hh[s->reg.isolated[i]].id;

		if (i == 0 && has(s, F_MISSED_CHECK))
			continue;
		for (int k = 0; k < 2; k++) {
			double at = base + k * s->day / 2 + i * 0.05 * hour;
			double t = temperature(s, s->fever_rate / 4);
			bool symptoms = rng_real(&s->rng) < 0.02;

			if (!(m = push(s, at, M_CHECK, K_ISOLATION_CHECKS)))
				goto nomem;
			snprintf(m->ref, sizeof(m->ref), "%s", hh);
			snprintf(m->id, sizeof(m->id), "K-%.24s-%06llu", hh,
				 (unsigned long long)++s->nseq);
			m->temp = t;
			m->flag = symptoms;
		}
	}
	if (people(s, base) < 0)
		goto nomem;
	return 0;
nomem:
	free(times);
	return -ENOMEM;
}

/* The injected faults, once, in the first seconds of the run. 0 or -ENOMEM. */
static int
fault_msgs(struct sim *s)
{
	const struct household *h;
	struct msg *m;

	if (has(s, F_FEVER)) {
		h = &s->reg.hh[s->order[s->norder - 1]];
		if (!canonical(s, 3.0, h->card[0], "in", 38.9, 0, LABEL(F_FEVER)))
			return -ENOMEM;
	}
	if (has(s, F_SEALED) && !status(s, 4.0, 7, "forced", LABEL(F_SEALED)))
		return -ENOMEM;
	if (has(s, F_BREACH)) {
		h = &s->reg.hh[s->reg.isolated[1]];
		if (!canonical(s, 5.0, h->card[0], "out", 36.4, 0, LABEL(F_BREACH)))
			return -ENOMEM;
	}
	if (has(s, F_MALFORMED))
		for (size_t i = 0; i < N_BAD; i++) {
			if (!(m = push(s, 6.0 + (double)i * 0.1, M_RAW, K_REJECTS)))
				return -ENOMEM;
			m->bad = (int)i;
			m->label = LABEL(F_MALFORMED);
		}
	if (has(s, F_UNKNOWN_CARD) &&
	    !canonical(s, 7.0, "C-X9999", "in", 36.5, 0, LABEL(F_UNKNOWN_CARD)))
		return -ENOMEM;
	if (has(s, F_SKEW)) {
		h = &s->reg.hh[s->order[s->norder - 2]];
		if (!canonical(s, 8.0, h->card[0], "in", 37.8, 3 * 3600, LABEL(F_SKEW)))
			return -ENOMEM;
	}
	if (has(s, F_EXIT_QUOTA)) {
		/* Twice out with its ordinary card: a second card is a carer's
		 * (extra, --sql), whose passes count against no quota. */
		h = &s->reg.hh[s->order[s->norder - 3]];
		if (!canonical(s, 9.0, h->card[0], "out", 36.5, 0, LABEL(F_EXIT_QUOTA)) ||
		    !canonical(s, 9.5, h->card[0], "out", 36.6, 0, LABEL(F_EXIT_QUOTA)))
			return -ENOMEM;
	}
	if (has(s, F_HOTLINE)) {
		if (!(m = push(s, 10.0, M_HOTLINE, K_HOTLINE_EVENTS)))
			return -ENOMEM;
		snprintf(m->id, sizeof(m->id), "H-URGENT-1");
		snprintf(m->ref, sizeof(m->ref), "%s", s->reg.hh[s->reg.isolated[2]].id);
		m->step = 1;
		m->what = "open";
		m->category = "medical";
		m->flag = true;
		m->note = "short of breath";
		m->label = LABEL(F_HOTLINE);
	}
	if (has(s, F_UNDELIVERED)) {
		/* due two simulated hours after it opens (at most 15 s): assigned, never delivered */
		h = &s->reg.hh[s->order[s->norder - 4]];
		if (!(m = need_step(s, 11.0, "N-LATE-1", 1, "open", NULL, LABEL(F_UNDELIVERED))))
			return -ENOMEM;
		snprintf(m->ref, sizeof(m->ref), "%s", h->id);
		m->category = "medicine";
		m->note = "insulin";
		m->due = 11.0 + (s->day / 12 < 15 ? s->day / 12 : 15);
		if (!need_step(s, 11.5, "N-LATE-1", 2, "assign", "vol-01", LABEL(F_UNDELIVERED)))
			return -ENOMEM;
	}
	if (has(s, F_UNCOLLECTED)) {
		if (!(m = push(s, 11.2, M_DROPOFF, K_DROPOFFS)))
			return -ENOMEM;
		snprintf(m->id, sizeof(m->id), "P-UNCOLLECTED-1");
		snprintf(m->ref, sizeof(m->ref), "%s", s->reg.hh[s->reg.isolated[4]].id);
		snprintf(m->by, sizeof(m->by), "vol-02");
		m->category = "groceries";
		m->what = "placed";
		m->label = LABEL(F_UNCOLLECTED);
	}
	return 0;
}

static uint64_t
fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ULL;
	return h;
}

static bool
wecom_seen(struct sim *s, uint64_t h)
{
	for (size_t i = 0; i < s->nwecom; i++)
		if (s->wecom_seen[i] == h)
			return true;
	if (s->nwecom == s->capwecom) {
		size_t cap = s->capwecom ? s->capwecom * 2 : 256;
		uint64_t *n = realloc(s->wecom_seen, cap * sizeof(*n));

		if (!n)
			return false; /* then a rare duplicate is stored once: counts differ, loudly */
		s->wecom_seen = n;
		s->capwecom = cap;
	}
	s->wecom_seen[s->nwecom++] = h;
	return false;
}

/* Builds a due message's topic and payload with the wall clock as device
 * time; returns the payload's length (< len). */
static size_t
build(struct sim *s, const struct msg *m, char *topic, size_t tlen, char *buf, size_t len)
{
	int64_t now = clocks_wall_us();
	char ts[40];
	int n = 0;

	sim_iso_time(ts, sizeof(ts), now, true);
	switch ((enum mtype)m->type) {
	case M_CANONICAL:
		sim_iso_time(ts, sizeof(ts), now - (int64_t)(m->skew * 1e6), true);
		topics_build(topic, tlen, s->root, TOPIC_GATE_EVENT, s->site, m->gate);
		n = snprintf(buf, len,
			     "{\"id\":\"%s\",\"ts\":\"%s\",\"card\":\"%s\",\"direction\":\"%s\","
			     "\"temp_c\":%.1f,\"mask\":%s}",
			     m->id, ts, m->ref, m->what, m->temp, m->flag ? "true" : "false");
		break;
	case M_HIKVISION:
		sim_iso_time(ts, sizeof(ts), now, false);
		topics_build(topic, tlen, s->root, TOPIC_GATE_EVENT, s->site, SIM_OPEN_GATE);
		n = snprintf(
			buf, len,
			"{\"ipAddress\":\"10.6.1.21\",\"portNo\":80,\"protocol\":\"HTTP\","
			"\"dateTime\":\"%s\",\"eventType\":\"AccessControllerEvent\","
			"\"eventState\":\"active\",\"AccessControllerEvent\":{"
			"\"majorEventType\":5,\"subEventType\":75,\"cardNo\":\"%s\","
			"\"serialNo\":%ld,\"currentVerifyMode\":\"cardOrFace\",\"mask\":\"%s\","
			"\"currTemperature\":%.1f,\"thermometryUnit\":\"celsius\","
			"\"isAbnomalTemperature\":%s},"
			"\"pictureURL\":\"http://10.6.1.21/LOCALS/pic/acsLinkCap/%ld.jpg\"}",
			ts, m->ref, m->serial, m->flag ? "yes" : "no", m->temp,
			m->temp >= 37.3 ? "true" : "false", m->serial);
		break;
	case M_WECOM: {
		long t = (long)(now / 1000000);

		topics_build(topic, tlen, s->root, TOPIC_GATE_EVENT, s->site, SIM_OPEN_GATE);
		/* the daemon keys a WeCom report by its hash: keep every report distinct */
		for (;; t--) {
			n = snprintf(buf, len,
				     "{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":[");
			for (int i = 0; i < m->nread; i++)
				n += snprintf(buf + n, len - (size_t)n,
					      "%s{\"userid\":\"%s\",\"temperature\":\"%.1f\","
					      "\"timestamp\":%ld,\"status\":%d}",
					      i ? "," : "", m->rd[i].user, m->rd[i].temp, t,
					      m->rd[i].temp >= 37.3);
			n += snprintf(buf + n, len - (size_t)n, "]}");
			if (!wecom_seen(s, fnv1a(buf, (size_t)n)))
				break;
		}
		break;
	}
	case M_STATUS:
		topics_build(topic, tlen, s->root, TOPIC_GATE_STATUS, s->site, m->gate);
		n = snprintf(buf, len, "{\"state\":\"%s\",\"ts\":\"%s\",\"id\":\"%s\"}", m->what,
			     ts, m->id);
		break;
	case M_RAW:
		topics_build(topic, tlen, s->root, bad_payloads[m->bad].kind, s->site,
			     bad_payloads[m->bad].id);
		n = snprintf(buf, len, "%s", bad_payloads[m->bad].payload);
		break;
	case M_DISINFECTION:
		topics_build(topic, tlen, s->root, TOPIC_DISINFECTION, s->site, m->ref);
		n = snprintf(buf, len,
			     "{\"id\":\"%s\",\"ts\":\"%s\",\"crew\":\"%s\","
			     "\"agent\":\"chlorine 500 mg/L\"}",
			     m->id, ts, m->what);
		break;
	case M_HOTLINE:
		topics_build(topic, tlen, s->root, TOPIC_HOTLINE, s->site, NULL);
		n = snprintf(buf, len,
			     "{\"call_id\":\"%s\",\"id\":\"%d\",\"action\":\"%s\","
			     "\"household\":\"%s\",\"category\":\"%s\",\"urgent\":%s,",
			     m->id, m->step, m->what, m->ref, m->category,
			     m->flag ? "true" : "false");
		if (m->note)
			n += snprintf(buf + n, len - (size_t)n, "\"note\":\"%s\",", m->note);
		n += snprintf(buf + n, len - (size_t)n, "\"ts\":\"%s\"}", ts);
		break;
	case M_CHECK:
		topics_build(topic, tlen, s->root, TOPIC_CHECK, s->site, m->ref);
		n = snprintf(buf, len,
			     "{\"id\":\"%s\",\"ts\":\"%s\",\"person\":\"P-%s-1\","
			     "\"temp_c\":%.1f,\"symptoms\":[%s]}",
			     m->id, ts, m->ref, m->temp, m->flag ? "\"cough\"" : "");
		break;
	case M_NEED:
		topics_build(topic, tlen, s->root, TOPIC_NEED, s->site, NULL);
		n = snprintf(buf, len,
			     "{\"need_id\":\"%s\",\"id\":\"%d\",\"action\":\"%s\",\"ts\":\"%s\"",
			     m->id, m->step, m->what, ts);
		if (m->ref[0])
			n += snprintf(buf + n, len - (size_t)n, ",\"household\":\"%s\"", m->ref);
		if (m->category)
			n += snprintf(buf + n, len - (size_t)n, ",\"category\":\"%s\"",
				      m->category);
		if (m->due >= 0) {
			char due[40];

			sim_iso_time(due, sizeof(due), s->start_wall_us + (int64_t)(m->due * 1e6),
				     true);
			n += snprintf(buf + n, len - (size_t)n, ",\"due\":\"%s\"", due);
		}
		if (m->call[0])
			n += snprintf(buf + n, len - (size_t)n, ",\"call_id\":\"%s\"", m->call);
		if (m->by[0])
			n += snprintf(buf + n, len - (size_t)n, ",\"by\":\"%s\"", m->by);
		if (m->note)
			n += snprintf(buf + n, len - (size_t)n, ",\"note\":\"%s\"", m->note);
		n += snprintf(buf + n, len - (size_t)n, "}");
		break;
	case M_CALL:
		topics_build(topic, tlen, s->root, TOPIC_CALL, s->site, m->ref);
		n = snprintf(buf, len,
			     "{\"id\":\"%s\",\"ts\":\"%s\",\"by\":\"%s\",\"outcome\":\"%s\"", m->id,
			     ts, m->by, m->what);
		if (m->category)
			n += snprintf(buf + n, len - (size_t)n, ",\"category\":\"%s\"",
				      m->category);
		if (m->note)
			n += snprintf(buf + n, len - (size_t)n, ",\"note\":\"%s\"", m->note);
		n += snprintf(buf + n, len - (size_t)n, "}");
		break;
	case M_DROPOFF:
		topics_build(topic, tlen, s->root, TOPIC_DROPOFF, s->site, NULL);
		n = snprintf(buf, len,
			     "{\"id\":\"%s\",\"ts\":\"%s\",\"household\":\"%s\",\"item\":\"%s\","
			     "\"action\":\"%s\"",
			     m->id, ts, m->ref, m->category, m->what);
		if (m->by[0])
			n += snprintf(buf + n, len - (size_t)n, ",\"by\":\"%s\"", m->by);
		n += snprintf(buf + n, len - (size_t)n, "}");
		break;
	}
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* ---------------------------------------------------------------- run */

static const char synopsis[] =
	"run --uri tcp://HOST:PORT --site S [--duration 60s] [--day 120s] [--seed N]\n"
	"      [--register FILE.csv] [--faults all|none|LIST] [--fever-rate R] [--passes-per-day N]\n"
	"      [--calls-per-day N] [--silent-at 12s] [--silent-for 25s] [--summary FILE]\n"
	"      " PUB_LOGIN_SYNOPSIS;

static int
write_summary(const struct sim *s, const struct pub_counts *c, double elapsed, const char *path)
{
	json_t *o = json_object(), *msgs = json_object(), *rows = json_object(),
	       *faults = json_object(), *iso = json_array();
	int rc;

	for (int k = 0; k < N_KINDS; k++) {
		json_object_set_new(msgs, kind_names[k], json_integer((json_int_t)c->msgs[k]));
		json_object_set_new(rows, kind_names[k], json_integer((json_int_t)c->rows[k]));
	}
	for (int f = 0; f < SIM_N_FAULTS; f++)
		if (c->labels[LABEL(f)])
			json_object_set_new(faults, sim_fault_names[f],
					    json_integer((json_int_t)c->labels[LABEL(f)]));
	for (int i = 0; i < SIM_N_ISOLATED; i++)
		json_array_append_new(iso, json_string(s->reg.hh[s->reg.isolated[i]].id));
	json_object_set_new(o, "site", json_string(s->site));
	json_object_set_new(o, "seed", json_integer(s->seed));
	json_object_set_new(o, "elapsed_s", json_real(round(elapsed * 1000) / 1000));
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "rows", rows);
	json_object_set_new(o, "faults", faults);
	json_object_set_new(o, "isolated", iso);
	json_object_set_new(o, "missed_check", json_string(s->reg.hh[s->reg.isolated[0]].id));
	/* the people work's faults: who or what to look for (null: not injected) */
	json_object_set_new(o, "missed_call",
			    has(s, F_MISSED_CALL) ? json_string(s->reg.hh[s->reg.isolated[3]].id) :
						    json_null());
	json_object_set_new(o, "uncollected",
			    has(s, F_UNCOLLECTED) ? json_string(s->reg.hh[s->reg.isolated[4]].id) :
						    json_null());
	json_object_set_new(o, "undelivered",
			    has(s, F_UNDELIVERED) ? json_string("N-LATE-1") : json_null());
	json_object_set_new(o, "second_card",
			    has(s, F_SECOND_CARD) && s->reg.second_card >= 0 ?
				    json_string(s->reg.hh[s->reg.second_card].id) :
				    json_null());
	rc = json_dump_file(o, path, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
	json_decref(o);
	if (rc < 0)
		tool_err("%s: cannot write the summary", path);
	return rc;
}

static void
print_table(const struct sim *s, const struct pub_counts *c, double elapsed)
{
	uint64_t tm = 0, tr = 0;
	bool any = false;

	printf("\ncordon-sim: published %llu messages in %.1f s (%.2f simulated days)\n",
	       (unsigned long long)c->acked, elapsed, elapsed / s->day);
	printf("%-18s %9s %9s\n", "kind", "messages", "rows");
	for (int k = 0; k < N_KINDS; k++) {
		printf("%-18s %9llu %9llu\n", kind_names[k], (unsigned long long)c->msgs[k],
		       (unsigned long long)c->rows[k]);
		tm += c->msgs[k];
		tr += c->rows[k];
	}
	printf("%-18s %9llu %9llu\n", "total", (unsigned long long)tm, (unsigned long long)tr);
	/* by name, as the Python simulator printed them */
	for (char first = 'a'; first <= 'z'; first++)
		for (int f = 0; f < SIM_N_FAULTS; f++) {
			if (sim_fault_names[f][0] != first || !c->labels[LABEL(f)])
				continue;
			printf("%s%s (%llu)", any ? ", " : "faults injected: ", sim_fault_names[f],
			       (unsigned long long)c->labels[LABEL(f)]);
			any = true;
		}
	if (any)
		putchar('\n');
}

/* A needs_help call is a welfare_calls row and the need_events row of the
 * need cordond opens for it. */
static void
fold_help_calls(struct pub_counts *c)
{
	c->msgs[K_WELFARE_CALLS] += c->msgs[K_HELP_CALLS];
	c->rows[K_WELFARE_CALLS] += c->msgs[K_HELP_CALLS];
	c->rows[K_NEED_EVENTS] += c->msgs[K_HELP_CALLS];
	c->msgs[K_HELP_CALLS] = c->rows[K_HELP_CALLS] = 0;
}

static void
sim_finish(struct sim *s)
{
	while (s->nheap)
		free(pop(s));
	free(s->heap);
	free(s->order);
	free(s->out);
	free(s->is_out);
	free(s->wecom_seen);
	free(s->iso_of);
	free(s->plan);
	reg_finish(&s->reg);
}

int
sim_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'U' },
		{ "username", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, PUB_OPT_PASSWORD_FILE },
		{ "site", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "day", required_argument, NULL, 'D' },
		{ "seed", required_argument, NULL, 'S' },
		{ "register", required_argument, NULL, 'r' },
		{ "faults", required_argument, NULL, 'f' },
		{ "fever-rate", required_argument, NULL, 'F' },
		{ "passes-per-day", required_argument, NULL, 'p' },
		{ "calls-per-day", required_argument, NULL, 'c' },
		{ "silent-at", required_argument, NULL, 'a' },
		{ "silent-for", required_argument, NULL, 'A' },
		{ "summary", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uri = NULL, *regfile = NULL, *summary = NULL;
	struct pub_login login = { NULL, NULL };
	char topic[256], payload[2048], faults_text[256] = "";
	struct sim s;
	struct pub *p = NULL;
	struct pub_counts c;
	double start, elapsed, end;
	long long v;
	int days = 0, ch, rc = SIM_FAILED;
	bool all_acked;

	memset(&s, 0, sizeof(s));
	s.seed = 1;
	s.day = 120;
	s.fever_rate = 1.0 / 2000;
	s.passes_per_day = 3000;
	s.calls_per_day = 40;
	s.silent_at = 12;
	s.silent_for = 25;
	s.faults = SIM_ALL_FAULTS;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":hu:", opts, NULL)) != -1) {
		switch (ch) {
		case 'U': uri = optarg; break;
		case 'u': login.username = optarg; break;
		case PUB_OPT_PASSWORD_FILE: login.password_file = optarg; break;
		case 's': s.site = optarg; break;
		case 'r': regfile = optarg; break;
		case 'o': summary = optarg; break;
		case 'd':
			if (sim_parse_duration(optarg, &s.duration) < 0)
				return tool_usage(
					synopsis,
					"--duration: not a duration: '%s' (e.g. 60s, 5m, 2h)",
					optarg);
			break;
		case 'D':
			if (sim_parse_duration(optarg, &s.day) < 0 || s.day <= 0)
				return tool_usage(synopsis,
						  "--day must be a positive duration: '%s'",
						  optarg);
			break;
		case 'a':
			if (sim_parse_duration(optarg, &s.silent_at) < 0)
				return tool_usage(synopsis, "--silent-at: not a duration: '%s'",
						  optarg);
			break;
		case 'A':
			if (sim_parse_duration(optarg, &s.silent_for) < 0)
				return tool_usage(synopsis, "--silent-for: not a duration: '%s'",
						  optarg);
			break;
		case 'S':
			if (sim_parse_int(optarg, 0, INT64_MAX, &s.seed) < 0)
				return tool_usage(synopsis, "--seed: not a number: '%s'", optarg);
			break;
		case 'f':
			if (sim_parse_faults(optarg, &s.faults) < 0)
				return SIM_USAGE;
			break;
		case 'F':
			if (sim_parse_real(optarg, 0, 1, &s.fever_rate) < 0)
				return tool_usage(synopsis, "--fever-rate: a share in [0, 1]: '%s'",
						  optarg);
			break;
		case 'p':
		case 'c':
			if (sim_parse_int(optarg, 0, 10000000, &v) < 0)
				return tool_usage(synopsis, "%s: not a count: '%s'",
						  argv[optind - 2], optarg);
			*(ch == 'p' ? &s.passes_per_day : &s.calls_per_day) = (int)v;
			break;
		case 'h': printf("usage: cordon-sim %s\n", synopsis); return 0;
		case ':': return tool_usage(synopsis, "%s needs a value", argv[optind - 1]);
		default: return tool_usage(synopsis, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return tool_usage(synopsis, "unexpected argument '%s'", argv[optind]);
	if (!uri || !s.site)
		return tool_usage(synopsis, "--uri and --site are required");
	if (pub_login_check(&login, synopsis) != 0)
		return SIM_USAGE;
	if (!tool_valid_id(s.site))
		return tool_usage(synopsis, "--site: not an id ([A-Za-z0-9_-]{1,64}): '%s'",
				  s.site);
	snprintf(s.root, sizeof(s.root), "cordon");

	if (regfile ? reg_read(&s.reg, regfile) < 0 : reg_generate(&s.reg, (uint64_t)s.seed) < 0) {
		if (!regfile)
			tool_err("out of memory");
		return SIM_FAILED;
	}
	if (reg_isolate(&s.reg, (uint64_t)s.seed) < 0)
		goto out;
	reg_second_card(&s.reg, (uint64_t)s.seed);
	rng_seed(&s.rng, (uint64_t)s.seed, 0);
	rng_seed(&s.people, (uint64_t)s.seed, 3);
	s.order = malloc(s.reg.n * sizeof(*s.order));
	s.out = malloc(s.reg.n * sizeof(*s.out));
	s.is_out = calloc(s.reg.n, sizeof(*s.is_out));
	s.iso_of = malloc(s.reg.n * sizeof(*s.iso_of));
	if (!s.order || !s.out || !s.is_out || !s.iso_of)
		goto nomem;
	for (size_t i = 0; i < s.reg.n; i++)
		s.iso_of[i] = -1;
	for (int k = 0; k < SIM_N_ISOLATED; k++)
		s.iso_of[s.reg.isolated[k]] = k;
	for (size_t i = 0; i < s.reg.n; i++)
		if (s.iso_of[i] < 0)
			s.order[s.norder++] = (int)i;
	rng_shuffle(&s.rng, s.order, s.norder);

	sim_signals_block();
	if (pub_create(uri, &login, "cordon-sim", 1000, &p) < 0)
		goto out;
	if (fault_msgs(&s) < 0)
		goto nomem;
	for (int f = 0; f < SIM_N_FAULTS; f++)
		if (has(&s, (enum sim_fault)f))
			snprintf(faults_text + strlen(faults_text),
				 sizeof(faults_text) - strlen(faults_text), "%s%s",
				 faults_text[0] ? "," : "", sim_fault_names[f]);
	printf("cordon-sim: site %s, seed %lld, 1 simulated day = %gs, faults: %s\n", s.site,
	       s.seed, s.day, faults_text[0] ? faults_text : "none");
	fflush(stdout);

	end = s.duration > 0 ? s.duration : INFINITY;
	start = sim_mono();
	s.start_wall_us = clocks_wall_us();
	for (;;) {
		struct msg *m;
		double delay;
		size_t len;
		int err;

		if ((!s.nheap || s.heap[0]->at >= days * s.day) && days * s.day < end) {
			if (day(&s, days * s.day) < 0)
				goto nomem;
			days++;
			continue;
		}
		if (!s.nheap || s.heap[0]->at >= end)
			break;
		m = pop(&s);
		delay = m->at - (sim_mono() - start);
		if (sim_sleep(delay)) {
			free(m);
			break;
		}
		len = build(&s, m, topic, sizeof(topic), payload, sizeof(payload));
		err = pub_send(p, topic, payload, len, 1, PUB_TAG(m->kind, m->rows, m->label));
		free(m);
		if (err < 0)
			break;
	}
	/* every message acknowledged by the broker before it counts as published */
	all_acked = pub_drain(p, 60);
	elapsed = sim_mono() - start;
	pub_counts(p, &c);
	fold_help_calls(&c);
	if (!all_acked || c.failed)
		tool_err("only %llu of %llu messages acknowledged", (unsigned long long)c.acked,
			 (unsigned long long)c.sent);
	print_table(&s, &c, elapsed);
	fflush(stdout);
	if (summary && write_summary(&s, &c, elapsed, summary) < 0)
		goto out;
	rc = all_acked && !c.failed ? 0 : SIM_FAILED;
	goto out;
nomem:
	tool_err("out of memory");
out:
	pub_destroy(p);
	sim_finish(&s);
	return rc;
}
