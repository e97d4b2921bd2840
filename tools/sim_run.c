/* sim_run.c - `cordon-sim run`: one simulated day of the reference compound
 * after another, compressed into --day, plus the injected faults.
 *
 * Every message is scheduled at a real offset from the start (seconds) and
 * built when it is due, with the wall clock as its device time. A day is
 * generated when the first message of the previous one is due past its end,
 * so the schedule is a heap (by offset, then by creation order). The PRNG
 * draws happen when a day is generated, never when a message is sent: the
 * same --seed gives the same messages in the same order. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clocks.h"
#include "sim.h"
#include "topics.h"

enum kind {
	K_GATE_EVENTS,
	K_GATE_STATUS,
	K_DISINFECTIONS,
	K_HOTLINE_EVENTS,
	K_ISOLATION_CHECKS,
	K_REJECTS,
	N_KINDS
};
static const char *const kind_names[N_KINDS] = {
	"gate_events",	  "gate_status",      "disinfections",
	"hotline_events", "isolation_checks", "rejects",
};

enum fault {
	F_FEVER,
	F_SEALED,
	F_BREACH,
	F_MALFORMED,
	F_UNKNOWN_CARD,
	F_SKEW,
	F_EXIT_QUOTA,
	F_HOTLINE,
	F_MISSED_CHECK,
	F_SILENT,
	N_FAULTS
};
static const char *const fault_names[N_FAULTS] = {
	"fever", "sealed",     "breach",  "malformed",	  "unknown_card",
	"skew",	 "exit_quota", "hotline", "missed_check", "silent",
};
#define NO_LABEL 0
#define LABEL(f) ((f) + 1)

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
	M_CHECK
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
	char id[48]; /* record id; status id; call id */
	char gate[8];
	char ref[SIM_ID_MAX]; /* card, zone, household */
	const char *what;     /* direction, state, crew, action */
	const char *category; /* hotline */
	const char *note;     /* hotline */
	double temp, skew;
	bool flag;   /* mask, urgent, symptoms */
	int step;    /* hotline update number */
	long serial; /* Hikvision */
	int bad;     /* index into bad_payloads */
	int nread;
	struct reading rd[3];
};

struct sim {
	const char *site;
	char root[96];
	long long seed;
	double day, duration, fever_rate, silent_at, silent_for;
	int passes_per_day, calls_per_day;
	unsigned faults; /* 1 << enum fault */
	struct rng rng;
	struct reg reg;
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
has(const struct sim *s, enum fault f)
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
		const char *hh = s->reg.hh[rng_below(&s->rng, s->reg.n)].id;
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
		h = &s->reg.hh[s->order[s->norder - 3]];
		if (!canonical(s, 9.0, h->card[0], "out", 36.5, 0, LABEL(F_EXIT_QUOTA)) ||
		    !canonical(s, 9.5, h->card[h->ncards - 1], "out", 36.6, 0, LABEL(F_EXIT_QUOTA)))
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
	}
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* ---------------------------------------------------------------- run */

static const char synopsis[] =
	"run --uri tcp://HOST:PORT --site S [--duration 60s] [--day 120s] [--seed N]\n"
	"      [--register FILE.csv] [--faults all|none|LIST] [--fever-rate R] [--passes-per-day N]\n"
	"      [--calls-per-day N] [--silent-at 12s] [--silent-for 25s] [--summary FILE]";

static int
parse_faults(const char *arg, unsigned *ret)
{
	char buf[256], *tok, *save = NULL;
	unsigned f = 0;

	if (strcmp(arg, "all") == 0) {
		*ret = (1u << N_FAULTS) - 1;
		return 0;
	}
	if (strcmp(arg, "none") == 0) {
		*ret = 0;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < N_FAULTS && strcmp(tok, fault_names[i]) != 0; i++)
			;
		if (i == N_FAULTS) {
			tool_err("unknown fault '%s' (known: fever, sealed, breach, malformed, "
				 "unknown_card, skew, exit_quota, hotline, missed_check, silent)",
				 tok);
			return -1;
		}
		f |= 1u << i;
	}
	*ret = f;
	return 0;
}

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
	for (int f = 0; f < N_FAULTS; f++)
		if (c->labels[LABEL(f)])
			json_object_set_new(faults, fault_names[f],
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
		for (int f = 0; f < N_FAULTS; f++) {
			if (fault_names[f][0] != first || !c->labels[LABEL(f)])
				continue;
			printf("%s%s (%llu)", any ? ", " : "faults injected: ", fault_names[f],
			       (unsigned long long)c->labels[LABEL(f)]);
			any = true;
		}
	if (any)
		putchar('\n');
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
	reg_finish(&s->reg);
}

int
sim_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'u' },
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
	char topic[256], payload[2048], faults_text[160] = "";
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
	s.faults = (1u << N_FAULTS) - 1;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': uri = optarg; break;
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
			if (parse_faults(optarg, &s.faults) < 0)
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
	rng_seed(&s.rng, (uint64_t)s.seed, 0);
	s.order = malloc(s.reg.n * sizeof(*s.order));
	s.out = malloc(s.reg.n * sizeof(*s.out));
	s.is_out = calloc(s.reg.n, sizeof(*s.is_out));
	if (!s.order || !s.out || !s.is_out)
		goto nomem;
	for (size_t i = 0; i < s.reg.n; i++) {
		bool isolated = false;

		for (int k = 0; k < SIM_N_ISOLATED; k++)
			isolated |= s.reg.isolated[k] == (int)i;
		if (!isolated)
			s.order[s.norder++] = (int)i;
	}
	rng_shuffle(&s.rng, s.order, s.norder);

	sim_signals_block();
	if (pub_create(uri, "cordon-sim", 1000, &p) < 0)
		goto out;
	if (fault_msgs(&s) < 0)
		goto nomem;
	for (int f = 0; f < N_FAULTS; f++)
		if (has(&s, (enum fault)f))
			snprintf(faults_text + strlen(faults_text),
				 sizeof(faults_text) - strlen(faults_text), "%s%s",
				 faults_text[0] ? "," : "", fault_names[f]);
	printf("cordon-sim: site %s, seed %lld, 1 simulated day = %gs, faults: %s\n", s.site,
	       s.seed, s.day, faults_text[0] ? faults_text : "none");
	fflush(stdout);

	end = s.duration > 0 ? s.duration : INFINITY;
	start = sim_mono();
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
