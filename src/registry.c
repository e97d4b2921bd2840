/* registry.c - the register thread and the snapshot lookups.
 *
 * Every reg_* struct starts with `char site[REG_ID], <id>[REG_ID]`, so
 * one comparator sorts them all and bsearch finds by (site, id). */
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 15000

struct registry {
	char *conninfo;
	char *default_tz;
	int wake_fd;
	pthread_t thread;
	int started;
	_Atomic int quit;
	int seeded;		/* the rule state was loaded once */
	_Atomic int reseed;	/* load the open alerts again (registry_reseed) */
	_Atomic int64_t seed_rows;	/* open alerts loaded per site and kind */
	pthread_mutex_t lock;
	struct registry_snapshot *ready;	/* loaded, not yet taken */
	uint64_t generation;
	PGconn *conn;
};

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

static const void *
find(const void *base, size_t n, size_t size, const char *site, const char *id)
{
	char key[2 * REG_ID];

	if (!base || strlen(site) >= REG_ID || strlen(id) >= REG_ID)
		return NULL;
	memset(key, 0, sizeof(key));
	memcpy(key, site, strlen(site));
	memcpy(key + REG_ID, id, strlen(id));
	return bsearch(key, base, n, size, cmp_pair);
}

const struct reg_site *
registry_site(const struct registry_snapshot *s, const char *site)
{
	/* reg_site has no second id: compare the site alone. */
	for (size_t lo = 0, hi = s->nsites; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(site, s->sites[mid].site);

		if (c == 0)
			return &s->sites[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct reg_gate *
registry_gate(const struct registry_snapshot *s, const char *site, const char *gate)
{
	return find(s->gates, s->ngates, sizeof(*s->gates), site, gate);
}

const struct reg_zone *
registry_zone(const struct registry_snapshot *s, const char *site, const char *zone)
{
	return find(s->zones, s->nzones, sizeof(*s->zones), site, zone);
}

const struct reg_household *
registry_household(const struct registry_snapshot *s, const char *site, const char *hh)
{
	return find(s->households, s->nhouseholds, sizeof(*s->households), site, hh);
}

const struct reg_card *
registry_card(const struct registry_snapshot *s, const char *site, const char *card)
{
	return find(s->cards, s->ncards, sizeof(*s->cards), site, card);
}

const struct tz *
registry_site_tz(const struct registry_snapshot *s, const char *site)
{
	const struct reg_site *rs = registry_site(s, site);

	return rs && rs->tz ? rs->tz : s->default_tz;
}

const struct reg_isolation *
registry_isolations(const struct registry_snapshot *s, const char *site, const char *hh,
		    size_t *ret_n)
{
	const struct reg_isolation *hit = find(s->isolations, s->nisolations,
					       sizeof(*s->isolations), site, hh);
	const struct reg_isolation *first, *last;

	*ret_n = 0;
	if (!hit)
		return NULL;
	first = last = hit;
	while (first > s->isolations && cmp_pair(first - 1, hit) == 0)
		first--;
	while (last + 1 < s->isolations + s->nisolations && cmp_pair(last + 1, hit) == 0)
		last++;
	*ret_n = (size_t)(last - first) + 1;
	return first;
}

void
registry_snapshot_free(struct registry_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nsites; i++)
		tz_free(s->sites[i].tz);
	tz_free(s->default_tz);
	free(s->sites);
	free(s->gates);
	free(s->zones);
	free(s->households);
	free(s->cards);
	free(s->isolations);
	if (s->seed) {
		free(s->seed->alerts);
		free(s->seed->seen);
		free(s->seed);
	}
	free(s);
}

struct registry_snapshot *
registry_snapshot_empty(const char *default_tz)
{
	struct registry_snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (tz_load(default_tz, &s->default_tz) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

int
registry_snapshot_set_default_tz(struct registry_snapshot *s, const char *default_tz)
{
	struct tz *tz;
	int err = tz_load(default_tz, &tz);

	if (err < 0)
		return err;
	tz_free(s->default_tz);
	s->default_tz = tz;
	return 0;
}

int
registry_set_default_tz(struct registry *r, const char *default_tz)
{
	char *copy = strdup(default_tz);

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	free(r->default_tz);
	r->default_tz = copy;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ---- loading (register thread) ---- */

static void
copy_id(char *dst, const char *src)
{
	snprintf(dst, REG_ID, "%s", src);
}

static PGresult *
select_rows(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return NULL;
	}
	return res;
}

#define LOAD(snap, field, count, res)						\
	do {									\
		(snap)->count = (size_t)PQntuples(res);				\
		(snap)->field = calloc((snap)->count + 1, sizeof(*(snap)->field)); \
		if (!(snap)->field)						\
			goto fail;						\
	} while (0)

static struct registry_snapshot *
load(struct registry *r, char *err, size_t errlen)
{
	struct registry_snapshot *s;
	PGresult *res = NULL;
	char zone[64];

	pthread_mutex_lock(&r->lock);
	snprintf(zone, sizeof(zone), "%s", r->default_tz);
	pthread_mutex_unlock(&r->lock);
	s = registry_snapshot_empty(zone);
	if (!s) {
		snprintf(err, errlen, "out of memory or no zone %s", zone);
		return NULL;
	}
	if (db_exec(r->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) < 0)
		goto fail;

	if (!(res = select_rows(r->conn, "SELECT site, timezone FROM sites")))
		goto sqlfail;
	LOAD(s, sites, nsites, res);
	for (size_t i = 0; i < s->nsites; i++) {
		const char *own = PQgetvalue(res, (int)i, 1);

		/* NULL: none of its own, the default (tz stays NULL). */
		copy_id(s->sites[i].site, PQgetvalue(res, (int)i, 0));
		if (!PQgetisnull(res, (int)i, 1) && tz_load(own, &s->sites[i].tz) < 0)
			log_warn("site %s: unknown time zone %s, using [site] timezone %s",
				 s->sites[i].site, own, zone);
	}
	PQclear(res);
	qsort(s->sites, s->nsites, sizeof(*s->sites), cmp_site);

	if (!(res = select_rows(r->conn, "SELECT site, gate, state, format, unit, active FROM gates")))
		goto sqlfail;
	LOAD(s, gates, ngates, res);
	for (size_t i = 0; i < s->ngates; i++) {
		struct reg_gate *g = &s->gates[i];
		int f = normalize_format_from_name(PQgetvalue(res, (int)i, 3));
		const char *u = PQgetvalue(res, (int)i, 4);

		copy_id(g->site, PQgetvalue(res, (int)i, 0));
		copy_id(g->gate, PQgetvalue(res, (int)i, 1));
		g->sealed = strcmp(PQgetvalue(res, (int)i, 2), "sealed") == 0;
		g->format = f < 0 ? FORMAT_AUTO : (enum gate_format)f;
		g->unit = *u == 'f' ? UNIT_FAHRENHEIT : *u == 'k' ? UNIT_KELVIN : UNIT_CELSIUS;
		g->active = *PQgetvalue(res, (int)i, 5) == 't';
	}
	PQclear(res);
	qsort(s->gates, s->ngates, sizeof(*s->gates), cmp_pair);

	if (!(res = select_rows(r->conn, "SELECT site, zone, coalesce(interval_s, 0) FROM zones")))
		goto sqlfail;
	LOAD(s, zones, nzones, res);
	for (size_t i = 0; i < s->nzones; i++) {
		copy_id(s->zones[i].site, PQgetvalue(res, (int)i, 0));
		copy_id(s->zones[i].zone, PQgetvalue(res, (int)i, 1));
		s->zones[i].interval_s = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
	}
	PQclear(res);
	qsort(s->zones, s->nzones, sizeof(*s->zones), cmp_pair);

	if (!(res = select_rows(r->conn,
				"SELECT site, household, building, unit, room, size FROM households")))
		goto sqlfail;
	LOAD(s, households, nhouseholds, res);
	for (size_t i = 0; i < s->nhouseholds; i++) {
		struct reg_household *h = &s->households[i];

		copy_id(h->site, PQgetvalue(res, (int)i, 0));
		copy_id(h->household, PQgetvalue(res, (int)i, 1));
		copy_id(h->building, PQgetvalue(res, (int)i, 2));
		copy_id(h->unit, PQgetvalue(res, (int)i, 3));
		copy_id(h->room, PQgetvalue(res, (int)i, 4));
		h->size = atoi(PQgetvalue(res, (int)i, 5));
	}
	PQclear(res);
	qsort(s->households, s->nhouseholds, sizeof(*s->households), cmp_pair);

	if (!(res = select_rows(r->conn, "SELECT site, card, household, state, extra FROM cards")))
		goto sqlfail;
	LOAD(s, cards, ncards, res);
	for (size_t i = 0; i < s->ncards; i++) {
		struct reg_card *c = &s->cards[i];

		copy_id(c->site, PQgetvalue(res, (int)i, 0));
		copy_id(c->card, PQgetvalue(res, (int)i, 1));
		copy_id(c->household, PQgetvalue(res, (int)i, 2));
		c->revoked = strcmp(PQgetvalue(res, (int)i, 3), "revoked") == 0;
		c->extra = *PQgetvalue(res, (int)i, 4) == 't';
	}
	PQclear(res);
	qsort(s->cards, s->ncards, sizeof(*s->cards), cmp_pair);

	if (!(res = select_rows(r->conn,
		"SELECT site, household, coalesce(person, ''),"
		" floor(extract(epoch FROM starts_at))::bigint, floor(extract(epoch FROM ends_at))::bigint,"
		" coalesce(check_interval_s, 0) FROM isolation_orders"
		" WHERE released_at IS NULL AND ends_at > now()")))
		goto sqlfail;
	LOAD(s, isolations, nisolations, res);
	for (size_t i = 0; i < s->nisolations; i++) {
		struct reg_isolation *o = &s->isolations[i];

		copy_id(o->site, PQgetvalue(res, (int)i, 0));
		copy_id(o->household, PQgetvalue(res, (int)i, 1));
		copy_id(o->person, PQgetvalue(res, (int)i, 2));
		o->starts_s = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
		o->ends_s = strtoll(PQgetvalue(res, (int)i, 4), NULL, 10);
		o->check_interval_s = strtoll(PQgetvalue(res, (int)i, 5), NULL, 10);
	}
	PQclear(res);
	res = NULL;
	qsort(s->isolations, s->nisolations, sizeof(*s->isolations), cmp_pair);

	if (db_exec(r->conn, "COMMIT", err, errlen) < 0)
		goto fail;
	return s;
sqlfail:
	db_error_text(r->conn, NULL, err, errlen);
fail:
	PQclear(res);
	PQclear(PQexec(r->conn, "ROLLBACK"));
	registry_snapshot_free(s);
	return NULL;
}

#define SEEN_SQL \
	"SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint" \
	" FROM gate_events WHERE received_at > now() - interval '1 day' GROUP BY site, gate" \
	" UNION ALL SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint" \
	" FROM gate_status WHERE received_at > now() - interval '1 day' GROUP BY site, gate" \
	" UNION ALL SELECT 'zone', site, zone, '', (extract(epoch FROM max(ts)) * 1e6)::bigint" \
	" FROM disinfections WHERE ts > now() - interval '7 days' GROUP BY site, zone" \
	" UNION ALL SELECT 'check', site, household, coalesce(person, ''), (extract(epoch FROM max(ts)) * 1e6)::bigint" \
	" FROM isolation_checks WHERE ts > now() - interval '60 days' GROUP BY site, household, person" \
	" UNION ALL SELECT 'check', site, household, '', (extract(epoch FROM max(ts)) * 1e6)::bigint" \
	" FROM isolation_checks WHERE ts > now() - interval '60 days' GROUP BY site, household" \
	" UNION ALL SELECT 'call', site, call_id, coalesce(category, ''), (extract(epoch FROM opened_at) * 1e6)::bigint" \
	" FROM hotline_calls WHERE status = 'open' AND urgent AND opened_at IS NOT NULL" \
	" UNION ALL SELECT * FROM (SELECT 'exit', g.site, c.household, '', (extract(epoch FROM g.ts) * 1e6)::bigint" \
	" FROM gate_events g JOIN cards c ON c.site = g.site AND c.card = g.card" \
	" WHERE g.direction = 'out' AND g.ts > now() - interval '7 days' ORDER BY g.ts) e"

/* The open alerts: aggregates first, then the oldest $1 of each site and
 * kind (the bound, and as many again to fold at most in one pass; the
 * last column says whether a site and kind has more). */
#define ALERTS_SQL \
	"SELECT alert_id, site, kind, severity, state, subject, event_key, coalesce(gate, '')," \
	" coalesce(household, ''), coalesce(card, ''), coalesce(zone, ''), coalesce(call_id, '')," \
	" coalesce((temp_c * 10)::int, -32768), (extract(epoch FROM raised_at) * 1e6)::bigint," \
	" (extract(epoch FROM updated_at) * 1e6)::bigint, count, coalesce(reason, '')," \
	" coalesce(by_whom, ''), coalesce(distinct_subjects, 0), coalesce(sample, '')," \
	" (total > $1)::int FROM (SELECT *, row_number() OVER w AS rank, count(*) OVER" \
	" (PARTITION BY site, kind, subject = '*') AS total FROM alerts" \
	" WHERE state <> 'resolved' WINDOW w AS (PARTITION BY site, kind, subject = '*'" \
	" ORDER BY raised_at, alert_id)) a WHERE rank <= $1" \
	" ORDER BY subject = '*' DESC, raised_at, alert_id"

/* The rule state of G3; NULL with err set on failure. */
static struct registry_seed *
load_seed(struct registry *r, char *err, size_t errlen)
{
	struct registry_seed *seed = calloc(1, sizeof(*seed));
	PGresult *res = NULL;

	if (!seed)
		return NULL;
	{
		char limit[24];
		const char *params[1] = { limit };

		snprintf(limit, sizeof(limit), "%" PRId64, atomic_load(&r->seed_rows));
		res = PQexecParams(r->conn, ALERTS_SQL, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			goto fail;
	}
	seed->nalerts = (size_t)PQntuples(res);
	seed->alerts = calloc(seed->nalerts + 1, sizeof(*seed->alerts));
	if (!seed->alerts)
		goto fail;
	for (size_t i = 0; i < seed->nalerts; i++) {
		struct seed_alert *a = &seed->alerts[i];
		int row = (int)i;

		snprintf(a->alert_id, sizeof(a->alert_id), "%s", PQgetvalue(res, row, 0));
		snprintf(a->site, sizeof(a->site), "%s", PQgetvalue(res, row, 1));
		snprintf(a->kind, sizeof(a->kind), "%s", PQgetvalue(res, row, 2));
		snprintf(a->severity, sizeof(a->severity), "%s", PQgetvalue(res, row, 3));
		snprintf(a->state, sizeof(a->state), "%s", PQgetvalue(res, row, 4));
		snprintf(a->subject, sizeof(a->subject), "%s", PQgetvalue(res, row, 5));
		snprintf(a->event_key, sizeof(a->event_key), "%s", PQgetvalue(res, row, 6));
		snprintf(a->gate, sizeof(a->gate), "%s", PQgetvalue(res, row, 7));
		snprintf(a->household, sizeof(a->household), "%s", PQgetvalue(res, row, 8));
		snprintf(a->card, sizeof(a->card), "%s", PQgetvalue(res, row, 9));
		snprintf(a->zone, sizeof(a->zone), "%s", PQgetvalue(res, row, 10));
		snprintf(a->call_id, sizeof(a->call_id), "%s", PQgetvalue(res, row, 11));
		a->temp_dc = atoi(PQgetvalue(res, row, 12));
		a->raised_us = strtoll(PQgetvalue(res, row, 13), NULL, 10);
		a->updated_us = strtoll(PQgetvalue(res, row, 14), NULL, 10);
		a->count = (uint32_t)strtoul(PQgetvalue(res, row, 15), NULL, 10);
		snprintf(a->reason, sizeof(a->reason), "%s", PQgetvalue(res, row, 16));
		snprintf(a->by, sizeof(a->by), "%s", PQgetvalue(res, row, 17));
		a->distinct = (uint32_t)strtoul(PQgetvalue(res, row, 18), NULL, 10);
		snprintf(a->sample, sizeof(a->sample), "%s", PQgetvalue(res, row, 19));
		if (atoi(PQgetvalue(res, row, 20)))
			seed->more = 1;
	}
	PQclear(res);
	if (!(res = select_rows(r->conn, SEEN_SQL)))
		goto fail;
	seed->nseen = (size_t)PQntuples(res);
	seed->seen = calloc(seed->nseen + 1, sizeof(*seed->seen));
	if (!seed->seen)
		goto fail;
	for (size_t i = 0; i < seed->nseen; i++) {
		struct seed_seen *x = &seed->seen[i];
		int row = (int)i;

		snprintf(x->what, sizeof(x->what), "%s", PQgetvalue(res, row, 0));
		copy_id(x->site, PQgetvalue(res, row, 1));
		copy_id(x->id, PQgetvalue(res, row, 2));
		copy_id(x->sub, PQgetvalue(res, row, 3));
		x->at_us = strtoll(PQgetvalue(res, row, 4), NULL, 10);
	}
	PQclear(res);
	return seed;
fail:
	db_error_text(r->conn, NULL, err, errlen);
	PQclear(res);
	free(seed->alerts);
	free(seed->seen);
	free(seed);
	return NULL;
}

static void
publish(struct registry *r, struct registry_snapshot *s)
{
	struct registry_snapshot *old;

	pthread_mutex_lock(&r->lock);
	s->generation = ++r->generation;
	old = r->ready;
	if (old && old->seed && !s->seed) {
		/* Not taken yet: the rule state must not get lost. */
		s->seed = old->seed;
		old->seed = NULL;
	}
	r->ready = s;
	pthread_mutex_unlock(&r->lock);
	registry_snapshot_free(old);
	log_info("register loaded: %zu sites, %zu gates, %zu zones, %zu households, %zu cards,"
		 " %zu active isolation orders", s->nsites, s->ngates, s->nzones, s->nhouseholds,
		 s->ncards, s->nisolations);
	if (eventfd_write(r->wake_fd, 1) < 0)
		log_err("register: cannot wake the main loop: %s", strerror(errno));
}

static void
sleep_ms(struct registry *r, int64_t ms)
{
	for (int64_t waited = 0; waited < ms && !atomic_load(&r->quit); waited += 100)
		usleep(100000);
}

/* Connects, LISTENs and loads; 0 or -1. */
static int
connect_and_load(struct registry *r, int *warned)
{
	char err[1024];
	struct registry_snapshot *s;

	r->conn = db_connect(r->conninfo, "cordond-register");
	if (!r->conn || PQstatus(r->conn) != CONNECTION_OK ||
	    db_exec(r->conn, "LISTEN cordon_register", err, sizeof(err)) < 0)
		goto fail;
	s = load(r, err, sizeof(err));
	atomic_store(&r->reseed, 0);
	if (s && !r->seeded) {
		s->seed = load_seed(r, err, sizeof(err));
		if (!s->seed) {
			registry_snapshot_free(s);
			s = NULL;
		}
	}
	if (!s) {
		if (!*warned)
			log_warn("register not loaded yet (%s); retrying", err);
		*warned = 1;
		goto fail;
	}
	if (s->seed) {
		r->seeded = 1;
		log_info("rule state loaded: %zu open alerts, %zu last-seen times",
			 s->seed->nalerts, s->seed->nseen);
	}
	publish(r, s);
	*warned = 0;
	return 0;
fail:
	PQfinish(r->conn);
	r->conn = NULL;
	return -1;
}

static void *
registry_thread(void *arg)
{
	struct registry *r = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	int warned = 0;

	while (!atomic_load(&r->quit)) {
		struct pollfd pfd;
		int dirty = 0;
		PGnotify *n;

		if (!r->conn) {
			if (connect_and_load(r, &warned) < 0) {
				sleep_ms(r, backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			} else {
				backoff = BACKOFF_MIN_MS;
			}
			continue;
		}
		pfd.fd = PQsocket(r->conn);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(r->conn) || PQstatus(r->conn) != CONNECTION_OK) {
			log_warn("register connection lost; reconnecting");
			PQfinish(r->conn);
			r->conn = NULL;
			continue;
		}
		while ((n = PQnotifies(r->conn)) != NULL) {
			dirty = 1;
			PQfreemem(n);
		}
		if (atomic_exchange(&r->reseed, 0)) {
			char err[1024];
			struct registry_snapshot *s = load(r, err, sizeof(err));

			if (s && !(s->seed = load_seed(r, err, sizeof(err)))) {
				registry_snapshot_free(s);
				s = NULL;
			}
			if (s)
				publish(r, s);
			else {
				log_warn("loading the open alerts again failed: %s; retrying", err);
				atomic_store(&r->reseed, 1);
				sleep_ms(r, 1000);
			}
		} else if (dirty) {
			char err[1024];
			struct registry_snapshot *s = load(r, err, sizeof(err));

			if (s)
				publish(r, s);
			else
				log_warn("register reload failed: %s", err);
		}
	}
	PQfinish(r->conn);
	r->conn = NULL;
	return NULL;
}

int
registry_create(const char *conninfo, const char *default_tz, int wake_fd, int64_t seed_rows,
		struct registry **ret_registry)
{
	struct registry *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	atomic_store(&r->seed_rows, seed_rows);
	r->wake_fd = wake_fd;
	r->conninfo = strdup(conninfo);
	r->default_tz = strdup(default_tz);
	if (!r->conninfo || !r->default_tz) {
		registry_destroy(r);
		return -ENOMEM;
	}
	err = pthread_create(&r->thread, NULL, registry_thread, r);
	if (err) {
		registry_destroy(r);
		return -err;
	}
	r->started = 1;
	*ret_registry = r;
	return 0;
}

void
registry_reseed(struct registry *r)
{
	atomic_store(&r->reseed, 1);
}

void
registry_destroy(struct registry *r)
{
	if (!r)
		return;
	if (r->started) {
		atomic_store(&r->quit, 1);
		pthread_join(r->thread, NULL);
	}
	registry_snapshot_free(r->ready);
	pthread_mutex_destroy(&r->lock);
	free(r->conninfo);
	free(r->default_tz);
	free(r);
}

struct registry_snapshot *
registry_take(struct registry *r)
{
	struct registry_snapshot *s;

	pthread_mutex_lock(&r->lock);
	s = r->ready;
	r->ready = NULL;
	pthread_mutex_unlock(&r->lock);
	return s;
}
