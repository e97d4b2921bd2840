/* registry_load.c - the register thread: loads the register from
 * PostgreSQL into snapshots (registry.c), LISTENs on cordon_register and
 * loads again on every NOTIFY; the first load also reads the rule state
 * (SPEC G3) with the SQL of alert_state.c, as typed rows, and a clustered
 * instance's shards taken over have theirs read on request
 * (registry_seed_shard); the steps of sites' hand-overs are written to
 * site_handovers on request (registry_note_handover). */
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
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "alert_state.h"
#include "backoff.h"
#include "clocks.h"
#include "cluster.h"
#include "db.h"
#include "handover.h"
#include "log.h"
#include "registry_internal.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 15000
/* NOTIFYs naming more sites than this between two loads reload everything. */
#define PARTIAL_MAX_SITES 64

/* A step of a site's hand-over to record (registry_note_handover). */
struct handover_step {
	char site[REG_ID];
	uint64_t hash; /* of site: the queue is searched for it on each note */
	int shard;
	unsigned step;	 /* HANDOVER_SENT or HANDOVER_DISCOVERY_CUT */
	uint64_t serial; /* given when queued or when its shard changed */
};

struct registry {
	char *conninfo;
	char *default_tz;
	int wake_fd;
	pthread_t thread;
	int started;
	_Atomic int quit;
	int seeded;		   /* the rule state was loaded once */
	_Atomic int reseed;	   /* load the open alerts again (registry_reseed) */
	_Atomic int64_t seed_rows; /* open alerts loaded per site and kind */
	pthread_mutex_t lock;
	struct registry_snapshot *ready; /* loaded, not yet taken */
	uint64_t generation;
	PGconn *conn;
	/* register thread only: the blocks of the last snapshot loaded (one
	 * reference each), what a reload of some sites starts from */
	struct reg_block **blocks;
	size_t nblocks;
	int blocks_valid; /* r->blocks are those of the last load */

	char *first_list; /* the first seed's sites, a text[] literal; NULL: every site */
	/* The seeds of shards (registry_seed_shard): under `lock`, the tag
	 * each shard is wanted with (0: not wanted) and the seeds loaded, not
	 * yet taken; req_fd wakes the thread. */
	int req_fd;
	int want_nshards;
	bool want_any;
	int64_t want_tag[CLUSTER_MAX_SHARDS];
	struct registry_seed *seeds, **seeds_tail;
	/* register thread only: a failed seed load is tried again then */
	int64_t seed_at_ms;
	struct backoff seed_backoff;
	unsigned seed_failures;

	/* Under `lock`: the seeds' rule of sites (registry_set_discovery) and
	 * the hand-over steps not written yet, one per site and step
	 * (registry_note_handover); req_fd wakes the thread. */
	bool discovery;
	struct handover_step *steps;
	size_t nsteps, steps_cap;
	uint64_t step_serial; /* the last one given */
	/* register thread only: a failed write is tried again then */
	int64_t steps_at_ms;
	struct backoff steps_backoff;
	unsigned steps_failures;
};

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

static int
cmp_site(const void *a, const void *b)
{
	return strcmp(((const struct reg_site *)a)->site, ((const struct reg_site *)b)->site);
}

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

/* Rows in the tables' own order (an ORDER BY made PostgreSQL sort the whole
 * register: 4x slower at 4 million cards); each block is sorted once its
 * rows are in. */
#define HH_SQL "SELECT site, household, building, unit, room, size FROM households%s"
#define CARDS_SQL "SELECT site, card, household, state, extra FROM cards%s"

/* The block of `site` while loading: the last one used (rows come mostly
 * site by site), else found or made in s. */
static struct reg_block *
row_block(struct registry_snapshot *s, struct reg_block **cur, const char *site)
{
	if (!*cur || strcmp(block_site(*cur), site) != 0)
		*cur = registry_snapshot_block(s, site);
	return *cur;
}

static int
hh_row(struct registry_snapshot *s, struct reg_block **cur, const PGresult *res)
{
	struct reg_block *b = row_block(s, cur, PQgetvalue(res, 0, 0));
	struct hh_entry e;
	int err, size = atoi(PQgetvalue(res, 0, 5));

	/* Appended unsorted: load_blocks() sorts them. */
	if (!b)
		return -ENOMEM;
	if ((err = block_grow((void **)&b->hh, &b->hh_cap, b->nhh, sizeof(*b->hh))) < 0 ||
	    (err = block_pool_add(b, PQgetvalue(res, 0, 1), &e.id)) < 0 ||
	    (err = block_intern(b, PQgetvalue(res, 0, 2), &e.building)) < 0 ||
	    (err = block_intern(b, PQgetvalue(res, 0, 3), &e.unit)) < 0 ||
	    (err = block_intern(b, PQgetvalue(res, 0, 4), &e.room)) < 0)
		return err;
	e.size = size < 0 ? 0 : size > 255 ? 255 : (uint32_t)size;
	b->hh[b->nhh++] = e;
	s->nhouseholds++;
	return 0;
}

static int
card_row(struct registry_snapshot *s, struct reg_block **cur, const PGresult *res)
{
	struct reg_block *b = row_block(s, cur, PQgetvalue(res, 0, 0));
	const char *household = PQgetvalue(res, 0, 2);
	struct card_entry e;
	uint32_t hh, at;
	int found, err;

	/* Appended unsorted (the households are sorted by now). */
	if (!b)
		return -ENOMEM;
	at = block_hh_pos(b, household, &found);
	if ((err = block_grow((void **)&b->cards, &b->cards_cap, b->ncards, sizeof(*b->cards))) <
		    0 ||
	    (err = block_pool_add(b, PQgetvalue(res, 0, 1), &e.id)) < 0)
		return err;
	if (found)
		hh = b->hh[at].id;
	else if ((err = block_intern(b, household, &hh)) < 0)
		return err;
	e.household = hh | (strcmp(PQgetvalue(res, 0, 3), "revoked") == 0 ? CARD_REVOKED : 0) |
		(*PQgetvalue(res, 0, 4) == 't' ? CARD_EXTRA : 0);
	b->cards[b->ncards++] = e;
	s->ncards++;
	return 0;
}

static int
cmp_hh(const void *a, const void *b, void *pool)
{
	return strcmp((const char *)pool + ((const struct hh_entry *)a)->id,
		      (const char *)pool + ((const struct hh_entry *)b)->id);
}

static int
cmp_card(const void *a, const void *b, void *pool)
{
	return strcmp((const char *)pool + ((const struct card_entry *)a)->id,
		      (const char *)pool + ((const struct card_entry *)b)->id);
}

/* The text[] literal of `sites` ({"a","b"}), each quoted with `"` and `\`
 * escaped so that none reads as NULL or splits; NULL when out of memory
 * (the caller frees it). */
static char *
text_array(char *const *sites, size_t nsites)
{
	size_t len = 3, n = 0;
	char *list;

	for (size_t i = 0; i < nsites; i++)
		len += 2 * strlen(sites[i]) + 3;
	if (!(list = malloc(len)))
		return NULL;
	list[n++] = '{';
	for (size_t i = 0; i < nsites; i++) {
		if (i)
			list[n++] = ',';
		list[n++] = '"';
		for (const char *c = sites[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				list[n++] = '\\';
			list[n++] = *c;
		}
		list[n++] = '"';
	}
	list[n++] = '}';
	list[n] = '\0';
	return list;
}

/* Runs `sql` (with the site list `list` as $1 when not NULL) and hands
 * each row to `row`, one row at a time (libpq's single-row mode: no result
 * ever holds the whole register). 0, or -1 with err set. */
static int
stream(struct registry *r, struct registry_snapshot *s, const char *sql, const char *list,
       int (*row)(struct registry_snapshot *, struct reg_block **, const PGresult *), char *err,
       size_t errlen)
{
	struct reg_block *cur = NULL;
	PGresult *res;
	int failed = 0;

	if (!PQsendQueryParams(r->conn, sql, list ? 1 : 0, NULL, &list, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(r->conn)) {
		db_error_text(r->conn, NULL, err, errlen);
		while ((res = PQgetResult(r->conn)) != NULL)
			PQclear(res);
		return -1;
	}
	while ((res = PQgetResult(r->conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (!failed && row(s, &cur, res) < 0) {
				snprintf(err, errlen,
					 "out of memory (or a site's strings over 1 GiB)");
				failed = 1;
			}
			break;
		case PGRES_TUPLES_OK: break;
		default:
			if (!failed)
				db_error_text(r->conn, res, err, errlen);
			failed = 1;
			break;
		}
		PQclear(res);
	}
	return failed ? -1 : 0;
}

/* Reads the households and cards of `sites` (all when NULL) into blocks of
 * snapshot s, row by row (libpq's single-row mode: no result ever holds
 * the whole register), then takes the blocks of the other sites from
 * r->blocks (the caller has checked r->blocks_valid). 0, or -1 with err
 * set. */
static int
load_blocks(struct registry *r, struct registry_snapshot *s, char *const *sites, size_t nsites,
	    char *err, size_t errlen)
{
	char sql[512], *list = NULL;
	const char *where;
	struct reg_block **arr;
	int failed;
	size_t n = 0;

	if (sites && !(list = text_array(sites, nsites))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	where = sites ? " WHERE site = ANY($1::text[])" : "";
	snprintf(sql, sizeof(sql), HH_SQL, where);
	failed = stream(r, s, sql, list, hh_row, err, errlen) < 0;
	/* (qsort_r's array may not be NULL, even for 0 entries: a site with
	 * households and no cards has none.) */
	for (size_t i = 0; !failed && i < s->nblocks; i++)
		if (s->blocks[i]->nhh > 1)
			qsort_r(s->blocks[i]->hh, s->blocks[i]->nhh, sizeof(*s->blocks[i]->hh),
				cmp_hh, s->blocks[i]->pool);
	snprintf(sql, sizeof(sql), CARDS_SQL, where);
	failed = failed || stream(r, s, sql, list, card_row, err, errlen) < 0;
	free(list);
	for (size_t i = 0; !failed && i < s->nblocks; i++) {
		if (s->blocks[i]->ncards > 1)
			qsort_r(s->blocks[i]->cards, s->blocks[i]->ncards,
				sizeof(*s->blocks[i]->cards), cmp_card, s->blocks[i]->pool);
		block_seal(s->blocks[i]);
	}
	if (failed || !sites)
		return failed ? -1 : 0;

	/* The other sites: the blocks of the last load, shared; both lists are
	 * in site order. */
	arr = malloc((s->nblocks + r->nblocks + 1) * sizeof(*arr));
	if (!arr) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0, j = 0; i < s->nblocks || j < r->nblocks;) {
		int reloaded = 0;

		for (size_t k = 0; j < r->nblocks && k < nsites && !reloaded; k++)
			reloaded = strcmp(sites[k], block_site(r->blocks[j])) == 0;
		if (reloaded) {
			j++;
		} else if (j == r->nblocks ||
			   (i < s->nblocks &&
			    strcmp(block_site(s->blocks[i]), block_site(r->blocks[j])) < 0)) {
			arr[n++] = s->blocks[i++];
		} else {
			arr[n++] = block_ref(r->blocks[j]);
			s->nhouseholds += r->blocks[j]->nhh;
			s->ncards += r->blocks[j]->ncards;
			j++;
		}
	}
	free(s->blocks);
	s->blocks = arr;
	s->nblocks = n;
	return 0;
}

static void
drop_blocks(struct registry *r)
{
	for (size_t i = 0; i < r->nblocks; i++)
		block_unref(r->blocks[i]);
	free(r->blocks);
	r->blocks = NULL;
	r->nblocks = 0;
	r->blocks_valid = 0;
}

/* r->blocks becomes the blocks of s (a reference each), for the next
 * reload of some sites. Out of memory: none kept (blocks_valid 0), and
 * load() reads every site the next time. */
static void
keep_blocks(struct registry *r, const struct registry_snapshot *s)
{
	struct reg_block **arr = s->nblocks ? malloc(s->nblocks * sizeof(*arr)) : NULL;

	drop_blocks(r);
	if (!arr && s->nblocks)
		return;
	for (size_t i = 0; i < s->nblocks; i++)
		arr[i] = block_ref(s->blocks[i]);
	r->blocks = arr;
	r->nblocks = s->nblocks;
	r->blocks_valid = 1;
}

/* The sites, with their hand-over's steps (sql/0013_handover.sql). */
#define SITES_SQL                                                                          \
	"SELECT s.site, s.timezone, h.sent_at IS NOT NULL, h.discovery_cut_at IS NOT NULL" \
	" FROM sites s LEFT JOIN site_handovers h ON h.site = s.site"

#define LOAD(snap, field, count, res)                                              \
	do {                                                                       \
		(snap)->count = (size_t)PQntuples(res);                            \
		(snap)->field = calloc((snap)->count + 1, sizeof(*(snap)->field)); \
		if (!(snap)->field)                                                \
			goto fail;                                                 \
	} while (0)

/* Loads a snapshot: households and cards of `sites` (nsites of them) from
 * PostgreSQL and those of the other sites from r->blocks, or every site's
 * when sites is NULL or r->blocks are not those of the last load; the rest
 * (sites, gates, zones, isolation orders) in full. NULL with err set on
 * failure (r->blocks unchanged). */
static struct registry_snapshot *
load(struct registry *r, char *const *sites, size_t nsites, char *err, size_t errlen)
{
	struct registry_snapshot *s;
	PGresult *res = NULL;
	char zone[64];
	struct timespec t0, t1;

	if (!r->blocks_valid) {
		sites = NULL;
		nsites = 0;
	}
	pthread_mutex_lock(&r->lock);
	snprintf(zone, sizeof(zone), "%s", r->default_tz);
	pthread_mutex_unlock(&r->lock);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = registry_snapshot_empty(zone);
	if (!s) {
		snprintf(err, errlen, "out of memory or no zone %s", zone);
		return NULL;
	}
	/* jit: compiling the scans of a big register took longer than they run */
	if (db_exec(r->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) < 0 ||
	    db_exec(r->conn, "SET LOCAL jit = off", err, errlen) < 0)
		goto fail;

	if (!(res = select_rows(r->conn, SITES_SQL)))
		goto sqlfail;
	LOAD(s, sites, nsites, res);
	for (size_t i = 0; i < s->nsites; i++) {
		const char *own = PQgetvalue(res, (int)i, 1);

		/* NULL: none of its own, the default (tz stays NULL). */
		copy_id(s->sites[i].site, PQgetvalue(res, (int)i, 0));
		s->sites[i].handover = (*PQgetvalue(res, (int)i, 2) == 't' ? HANDOVER_SENT : 0) |
			(*PQgetvalue(res, (int)i, 3) == 't' ? HANDOVER_DISCOVERY_CUT : 0);
		if (!PQgetisnull(res, (int)i, 1) && tz_load(own, &s->sites[i].tz) < 0)
			log_warn("site %s: unknown time zone %s, using [site] timezone %s",
				 s->sites[i].site, own, zone);
	}
	PQclear(res);
	if (s->nsites > 1)
		qsort(s->sites, s->nsites, sizeof(*s->sites), cmp_site);

	if (!(res = select_rows(r->conn,
				"SELECT site, gate, state, format, unit, active FROM gates")))
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
	if (s->ngates > 1)
		qsort(s->gates, s->ngates, sizeof(*s->gates), registry_cmp_pair);

	if (!(res = select_rows(r->conn, "SELECT site, zone, coalesce(interval_s, 0) FROM zones")))
		goto sqlfail;
	LOAD(s, zones, nzones, res);
	for (size_t i = 0; i < s->nzones; i++) {
		copy_id(s->zones[i].site, PQgetvalue(res, (int)i, 0));
		copy_id(s->zones[i].zone, PQgetvalue(res, (int)i, 1));
		s->zones[i].interval_s = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
	}
	PQclear(res);
	if (s->nzones > 1)
		qsort(s->zones, s->nzones, sizeof(*s->zones), registry_cmp_pair);

	res = NULL;
	if (load_blocks(r, s, sites, nsites, err, errlen) < 0)
		goto fail;

	if (!(res = select_rows(
		      r->conn,
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
	if (s->nisolations > 1)
		qsort(s->isolations, s->nisolations, sizeof(*s->isolations), registry_cmp_pair);

	if (db_exec(r->conn, "COMMIT", err, errlen) < 0)
		goto fail;
	keep_blocks(r, s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->load_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	s->reloaded_sites = sites ? nsites : 0;
	return s;
sqlfail:
	db_error_text(r->conn, NULL, err, errlen);
fail:
	PQclear(res);
	PQclear(PQexec(r->conn, "ROLLBACK"));
	registry_snapshot_free(s);
	return NULL;
}

/* The rule state of G3, of every site or (`list`, a text[] literal) of
 * the sites listed; NULL with err set on failure. */
static struct registry_seed *
load_seed(struct registry *r, const char *list, char *err, size_t errlen)
{
	struct registry_seed *seed = calloc(1, sizeof(*seed));
	const char *v[ALERT_STATE_ALERT_COLS];
	size_t skipped = 0;
	PGresult *res = NULL;
	char limit[24];
	const char *params[2] = { limit, list };

	if (!seed) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(limit, sizeof(limit), "%" PRId64, atomic_load(&r->seed_rows));
	res = list ? PQexecParams(r->conn, alert_state_alerts_sites_sql, 2, NULL, params, NULL,
				  NULL, 0) :
		     PQexecParams(r->conn, alert_state_alerts_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto fail;
	seed->alerts = calloc((size_t)PQntuples(res) + 1, sizeof(*seed->alerts));
	if (!seed->alerts)
		goto fail;
	for (int row = 0; row < PQntuples(res); row++) {
		size_t ncols = (size_t)PQnfields(res);
		bool more;

		for (size_t c = 0; c < ncols && c < ALERT_STATE_ALERT_COLS; c++)
			v[c] = PQgetvalue(res, row, (int)c);
		if (alert_state_parse_alert(v, ncols, &seed->alerts[seed->nalerts], &more) < 0) {
			if (!skipped++)
				log_warn("open alert %s of kind %s (%s, %s) not restored: not known"
					 " to this build",
					 PQgetvalue(res, row, 0), PQgetvalue(res, row, 2),
					 PQgetvalue(res, row, 3), PQgetvalue(res, row, 4));
			continue;
		}
		seed->nalerts++;
		if (more)
			seed->more = 1;
	}
	PQclear(res);
	res = list ?
		PQexecParams(r->conn, alert_state_seen_sites_sql, 1, NULL, &list, NULL, NULL, 0) :
		PQexec(r->conn, alert_state_seen_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto fail;
	seed->seen = calloc((size_t)PQntuples(res) + 1, sizeof(*seed->seen));
	if (!seed->seen)
		goto fail;
	for (int row = 0; row < PQntuples(res); row++) {
		size_t ncols = (size_t)PQnfields(res);

		for (size_t c = 0; c < ncols && c < ALERT_STATE_SEEN_COLS; c++)
			v[c] = PQgetvalue(res, row, (int)c);
		if (alert_state_parse_seen(v, ncols, &seed->seen[seed->nseen]) == 0)
			seed->nseen++;
	}
	PQclear(res);
	if (skipped > 1)
		log_warn("%zu open alerts not restored: kind, severity or state not known to this"
			 " build",
			 skipped);
	return seed;
fail:
	db_error_text(r->conn, res, err, errlen);
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

	/* Logged before the main loop may have it (and free it). */
	log_info("register loaded: %zu sites, %zu gates, %zu zones, %zu households, %zu cards,"
		 " %zu active isolation orders; %.1f MiB, %s in %.3f s",
		 s->nsites, s->ngates, s->nzones, s->nhouseholds, s->ncards, s->nisolations,
		 (double)registry_snapshot_bytes(s) / (1 << 20),
		 s->reloaded_sites ? "the cards of the sites named reloaded" : "all read",
		 s->load_seconds);
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
	s = load(r, NULL, 0, err, sizeof(err));
	atomic_store(&r->reseed, 0);
	if (s && !r->seeded) {
		s->seed = load_seed(r, r->first_list, err, sizeof(err));
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

/* ---- the seeds of shards (registry_seed_shard) ---- */

/* Every site PostgreSQL knows that has rule state: the register's, and
 * those that only events named (a fever of a site nobody registered is
 * an alert all the same): open alerts, open calls, open needs; each with
 * whether it is registered and whether its hand-over from shard 0's
 * stream is done (HANDOVER_DISCOVERY_CUT), for registry_set_discovery. */
#define SHARD_SITES_SQL                                                                  \
	"SELECT u.site, s.site IS NOT NULL, h.discovery_cut_at IS NOT NULL FROM ("       \
	"SELECT site FROM sites UNION SELECT site FROM alerts WHERE state <> 'resolved'" \
	" UNION SELECT site FROM hotline_calls WHERE status = 'open'"                    \
	" UNION SELECT site FROM needs WHERE status IN ('open', 'assigned')) u"          \
	" LEFT JOIN sites s ON s.site = u.site LEFT JOIN site_handovers h ON h.site = u.site"

/* The shard whose rule state `site` is of, among nshards: with discovery
 * on, shard 0 until the site is registered and its hand-over is done
 * (docs/scaling.md), then cluster_shard_of() as with it off. */
static int
state_shard_of(const char *site, int nshards, bool discovery, bool registered, bool cut)
{
	if (discovery && !(registered && cut))
		return 0;
	return cluster_shard_of(site, nshards);
}

/* The sites of the shards with tags[shard] > 0 (of nshards; by
 * state_shard_of() with `discovery`), as a text[] literal in *ret_list;
 * their number in *ret_n. 0, or -1 with err set. */
static int
shard_sites(struct registry *r, int nshards, bool discovery, const int64_t *tags, char **ret_list,
	    size_t *ret_n, char *err, size_t errlen)
{
	PGresult *res = PQexec(r->conn, SHARD_SITES_SQL);
	char **sites;
	size_t n = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error_text(r->conn, res, err, errlen);
		PQclear(res);
		return -1;
	}
	sites = malloc(((size_t)PQntuples(res) + 1) * sizeof(*sites));
	if (!sites) {
		PQclear(res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		char *site = PQgetvalue(res, i, 0);
		bool registered = *PQgetvalue(res, i, 1) == 't';
		bool cut = *PQgetvalue(res, i, 2) == 't';

		if (tags[state_shard_of(site, nshards, discovery, registered, cut)] > 0)
			sites[n++] = site;
	}
	*ret_list = text_array(sites, n);
	free(sites);
	PQclear(res);
	if (!*ret_list) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*ret_n = n;
	return 0;
}

/* Loads the seed of the shards wanted (registry_seed_shard) and queues it
 * for the main loop. A failure puts them back (unless asked for again
 * meanwhile) and is tried again after the backoff. */
static void
load_shard_seed(struct registry *r)
{
	int64_t tags[CLUSTER_MAX_SHARDS];
	struct registry_seed *seed = NULL;
	char err[1024] = "", *list = NULL;
	size_t nsites = 0;
	int nshards;
	bool discovery;

	pthread_mutex_lock(&r->lock);
	nshards = r->want_nshards;
	discovery = r->discovery;
	memcpy(tags, r->want_tag, sizeof(tags));
	memset(r->want_tag, 0, sizeof(r->want_tag));
	r->want_any = false;
	pthread_mutex_unlock(&r->lock);

	/* One snapshot for the list and the rows: a site's rows all read at
	 * the same instant, after the lease was taken. With discovery, shard
	 * 0 holds every site nobody registered, and such a site's state may
	 * be only last-seen times and resolved calls, in tables no list
	 * names: the rows of every site are read (as at the start of an
	 * instance not clustered), and the main loop keeps its shards'. */
	if (db_exec(r->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, sizeof(err)) <
		    0 ||
	    db_exec(r->conn, "SET LOCAL jit = off", err, sizeof(err)) < 0 ||
	    (!(discovery && tags[0] > 0) &&
	     shard_sites(r, nshards, discovery, tags, &list, &nsites, err, sizeof(err)) < 0) ||
	    !(seed = load_seed(r, list, err, sizeof(err))) ||
	    db_exec(r->conn, "COMMIT", err, sizeof(err)) < 0 ||
	    (!(seed->shard_tags = calloc((size_t)nshards, sizeof(*seed->shard_tags))) &&
	     snprintf(err, sizeof(err), "out of memory") > 0)) {
		PQclear(PQexec(r->conn, "ROLLBACK"));
		registry_seed_free(seed);
		free(list);
		if (r->seed_failures++ == 0)
			log_warn("loading the rule state of shards taken over failed: %s; retrying"
				 " (every %d s at most)",
				 err, BACKOFF_MAX_MS / 1000);
		pthread_mutex_lock(&r->lock);
		for (int i = 0; i < nshards; i++)
			if (tags[i] > 0 && r->want_tag[i] == 0) {
				r->want_tag[i] = tags[i];
				r->want_any = true;
			}
		pthread_mutex_unlock(&r->lock);
		r->seed_at_ms = clocks_mono_ms() + backoff_next(&r->seed_backoff);
		return;
	}
	free(list);
	memcpy(seed->shard_tags, tags, (size_t)nshards * sizeof(*tags));
	seed->nshards = nshards;
	seed->nsites = nsites;
	if (r->seed_failures)
		log_info("rule state of shards taken over loaded after %u failed attempts",
			 r->seed_failures);
	r->seed_failures = 0;
	r->seed_at_ms = 0;
	backoff_reset(&r->seed_backoff);
	pthread_mutex_lock(&r->lock);
	*r->seeds_tail = seed;
	r->seeds_tail = &seed->next;
	pthread_mutex_unlock(&r->lock);
	if (eventfd_write(r->wake_fd, 1) < 0)
		log_err("register: cannot wake the main loop: %s", strerror(errno));
}

static bool
seed_wanted(struct registry *r)
{
	bool any;

	pthread_mutex_lock(&r->lock);
	any = r->want_any;
	pthread_mutex_unlock(&r->lock);
	return any;
}

void
registry_seed_shard(struct registry *r, int nshards, int shard, int64_t tag)
{
	if (nshards < 1 || nshards > CLUSTER_MAX_SHARDS || shard < 0 || shard >= nshards ||
	    tag <= 0)
		return;
	pthread_mutex_lock(&r->lock);
	r->want_nshards = nshards;
	r->want_tag[shard] = tag;
	r->want_any = true;
	pthread_mutex_unlock(&r->lock);
	if (eventfd_write(r->req_fd, 1) < 0)
		log_err("register: cannot wake the register thread: %s", strerror(errno));
}

struct registry_seed *
registry_take_seed(struct registry *r)
{
	struct registry_seed *seed;

	pthread_mutex_lock(&r->lock);
	seed = r->seeds;
	if (seed) {
		r->seeds = seed->next;
		if (!r->seeds)
			r->seeds_tail = &r->seeds;
		seed->next = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	return seed;
}

void
registry_set_discovery(struct registry *r, bool discovery)
{
	pthread_mutex_lock(&r->lock);
	r->discovery = discovery;
	pthread_mutex_unlock(&r->lock);
}

/* ---- the steps of sites' hand-overs (registry_note_handover) ---- */

/* One statement for every step queued, a row per site: $1 the sites
 * (text[], each once, in strcmp order), $2 their shards (integer[]), $3
 * and $4 whether HANDOVER_SENT and HANDOVER_DISCOVERY_CUT are to be
 * recorded (boolean[]). A site not registered (any more) is skipped; a
 * step recorded keeps its first time; `shard` is the one given with
 * HANDOVER_SENT (with HANDOVER_DISCOVERY_CUT alone, kept, or on insert the
 * one given with it). Every instance's register thread (this one's too:
 * a session receives its own notifications) reloads the sites written.
 * The rows are locked in site order: two instances writing the same
 * sites wait for one another, they do not deadlock on them. */
#define HANDOVER_SQL                                                                                \
	"WITH w AS (INSERT INTO site_handovers (site, shard, sent_at, discovery_cut_at)"            \
	" SELECT u.site, u.shard, CASE WHEN u.sent THEN now() END,"                                 \
	" CASE WHEN u.cut THEN now() END"                                                           \
	" FROM unnest($1::text[], $2::integer[], $3::boolean[], $4::boolean[])"                     \
	" u(site, shard, sent, cut)"                                                                \
	" WHERE EXISTS (SELECT 1 FROM sites s WHERE s.site = u.site) ORDER BY u.site"               \
	" ON CONFLICT (site) DO UPDATE SET"                                                         \
	" sent_at = coalesce(site_handovers.sent_at, EXCLUDED.sent_at),"                            \
	" discovery_cut_at = coalesce(site_handovers.discovery_cut_at, EXCLUDED.discovery_cut_at)," \
	" shard = CASE WHEN EXCLUDED.sent_at IS NULL THEN site_handovers.shard"                     \
	" ELSE EXCLUDED.shard END RETURNING site)"                                                  \
	" SELECT pg_notify('cordon_register', w.site) FROM w"

int
registry_note_handover(struct registry *r, const char *site, int shard, unsigned step)
{
	const unsigned each[] = { HANDOVER_SENT, HANDOVER_DISCOVERY_CUT };
	size_t len = strlen(site);
	uint64_t hash = XXH3_64bits(site, len);

	if (len == 0 || len > NORM_ID_MAX || shard < 0 || shard >= CLUSTER_MAX_SHARDS ||
	    step == 0 || (step & ~(unsigned)(HANDOVER_SENT | HANDOVER_DISCOVERY_CUT)))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	/* Room for both steps first: all of it queued, or nothing. */
	if (r->nsteps + 2 > r->steps_cap) {
		size_t cap = r->steps_cap ? 2 * r->steps_cap : 16;
		struct handover_step *arr = realloc(r->steps, cap * sizeof(*arr));

		if (!arr) {
			pthread_mutex_unlock(&r->lock);
			return -ENOMEM;
		}
		r->steps = arr;
		r->steps_cap = cap;
	}
	for (size_t k = 0; k < sizeof(each) / sizeof(each[0]); k++) {
		struct handover_step *q = NULL;

		if (!(step & each[k]))
			continue;
		for (size_t i = 0; i < r->nsteps && !q; i++)
			if (r->steps[i].hash == hash && r->steps[i].step == each[k] &&
			    strcmp(r->steps[i].site, site) == 0)
				q = &r->steps[i];
		if (q) {
			/* Queued already: the last shard counts (written again
			 * if a write of the old one is under way). */
			if (q->shard != shard) {
				q->shard = shard;
				q->serial = ++r->step_serial;
			}
			continue;
		}
		q = &r->steps[r->nsteps++];
		memcpy(q->site, site, len + 1);
		q->hash = hash;
		q->shard = shard;
		q->step = each[k];
		q->serial = ++r->step_serial;
	}
	pthread_mutex_unlock(&r->lock);
	if (eventfd_write(r->req_fd, 1) < 0)
		log_err("register: cannot wake the register thread: %s", strerror(errno));
	return 0;
}

size_t
registry_handovers_pending(struct registry *r)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = r->nsteps;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Whether steps wait to be written (the backoff aside). */
static bool
handovers_queued(struct registry *r)
{
	bool any;

	pthread_mutex_lock(&r->lock);
	any = r->nsteps > 0;
	pthread_mutex_unlock(&r->lock);
	return any;
}

static int
cmp_step(const void *a, const void *b)
{
	const struct handover_step *x = a, *y = b;
	int c = strcmp(x->site, y->site);

	return c ? c : (x->step > y->step) - (x->step < y->step);
}

/* HANDOVER_SQL's parameters for the n steps of q (sorted by cmp_step),
 * into params[4] (the caller frees them); 0, or -ENOMEM. */
static int
step_params(const struct handover_step *q, size_t n, char **params)
{
	char **sites = malloc((n + 1) * sizeof(*sites));
	size_t len = 3 + 4 * n, at[3] = { 0, 0, 0 }, nsites = 0;
	int err = -ENOMEM;

	for (int k = 1; k < 4; k++)
		params[k] = malloc(len);
	if (!sites || !params[1] || !params[2] || !params[3])
		goto out;
	for (size_t i = 0; i < n;) {
		bool sent = false, cut = false;
		int shard = q[i].shard;
		size_t j = i;

		/* The site's steps: HANDOVER_SENT first (cmp_step). */
		for (; j < n && strcmp(q[j].site, q[i].site) == 0; j++) {
			sent = sent || q[j].step == HANDOVER_SENT;
			cut = cut || q[j].step == HANDOVER_DISCOVERY_CUT;
		}
		at[0] += (size_t)snprintf(params[1] + at[0], len - at[0], "%s%d",
					  nsites ? "," : "{", shard);
		at[1] += (size_t)snprintf(params[2] + at[1], len - at[1], "%s%c",
					  nsites ? "," : "{", sent ? 't' : 'f');
		at[2] += (size_t)snprintf(params[3] + at[2], len - at[2], "%s%c",
					  nsites ? "," : "{", cut ? 't' : 'f');
		sites[nsites++] = (char *)q[i].site;
		i = j;
	}
	for (int k = 1; k < 4; k++)
		snprintf(params[k] + at[k - 1], len - at[k - 1], "%s}", nsites ? "" : "{");
	if ((params[0] = text_array(sites, nsites)) != NULL)
		err = 0;
out:
	free(sites);
	return err;
}

/* Writes the steps queued, in one statement with a NOTIFY per site, and
 * takes them off the queue (those queued or changed meanwhile stay). A
 * failure keeps them all and is tried again after the backoff (0.5 s
 * doubling to 15 s), logged when it starts failing and when it recovers. */
static void
write_handovers(struct registry *r)
{
	char err[1024] = "", *params[4] = { NULL, NULL, NULL, NULL };
	struct handover_step *q;
	uint64_t upto = 0;
	size_t n, kept = 0;
	PGresult *res;
	bool ok;

	pthread_mutex_lock(&r->lock);
	n = r->nsteps;
	q = malloc((n + 1) * sizeof(*q));
	if (q) {
		memcpy(q, r->steps, n * sizeof(*q));
		for (size_t i = 0; i < n; i++)
			upto = q[i].serial > upto ? q[i].serial : upto;
	}
	pthread_mutex_unlock(&r->lock);
	if (q)
		qsort(q, n, sizeof(*q), cmp_step);
	if (!q || step_params(q, n, params) < 0) {
		snprintf(err, sizeof(err), "out of memory");
		ok = false;
	} else {
		res = PQexecParams(r->conn, HANDOVER_SQL, 4, NULL, (const char *const *)params,
				   NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		if (!ok)
			db_error_text(r->conn, res, err, sizeof(err));
		PQclear(res);
	}
	for (int k = 0; k < 4; k++)
		free(params[k]);
	free(q);
	if (!ok) {
		if (r->steps_failures++ == 0)
			log_warn("recording %zu hand-over steps in site_handovers failed: %s;"
				 " retrying (every %d s at most)",
				 n, err, BACKOFF_MAX_MS / 1000);
		r->steps_at_ms = clocks_mono_ms() + backoff_next(&r->steps_backoff);
		return;
	}
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nsteps; i++)
		if (r->steps[i].serial > upto)
			r->steps[kept++] = r->steps[i];
	r->nsteps = kept;
	pthread_mutex_unlock(&r->lock);
	if (r->steps_failures)
		log_info("hand-over steps recorded after %u failed attempts", r->steps_failures);
	r->steps_failures = 0;
	r->steps_at_ms = 0;
	backoff_reset(&r->steps_backoff);
}

/* The sites named by the NOTIFYs read in one turn. */
struct dirty {
	int any, all; /* all: reload everything */
	char *sites[PARTIAL_MAX_SITES];
	size_t n;
};

static void
dirty_clear(struct dirty *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->sites[i]);
	memset(d, 0, sizeof(*d));
}

/* A NOTIFY cordon_register with `payload`: cordonctl names the site it
 * changed; anything else (no payload, not a site id, too many sites)
 * reloads every site. */
static void
note_site(struct dirty *d, const char *payload)
{
	size_t len = strlen(payload);

	d->any = 1;
	if (d->all)
		return;
	if (len == 0 || len > NORM_ID_MAX ||
	    strspn(payload,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "abcdefghijklmnopqrstuvwxyz0123456789_-") != len) {
		d->all = 1;
		return;
	}
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->sites[i], payload) == 0)
			return;
	if (d->n == PARTIAL_MAX_SITES || !(d->sites[d->n] = strdup(payload))) {
		d->all = 1;
		return;
	}
	d->n++;
}

/* A reload that failed (statement or lock timeout, a privilege, out of
 * memory, a replica's recovery conflict) keeps what the NOTIFYs named and
 * is tried again after a backoff: the sites named would otherwise keep
 * their old block until they change again, as later reloads of other
 * sites share it. */
struct retry {
	int64_t at_ms; /* CLOCK_MONOTONIC: not before then; 0: now */
	struct backoff backoff;
	unsigned failures; /* in a row */
	char err[1024];	   /* the last one logged */
};

/* Forgets the failures: the next reload is tried at once. */
static void
retry_clear(struct retry *t)
{
	*t = (struct retry){ 0 };
	backoff_init(&t->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
}

static void
reload(struct registry *r, struct dirty *d, struct retry *t)
{
	char err[sizeof(t->err)];
	struct registry_snapshot *s;

	s = load(r, d->all ? NULL : d->sites, d->all ? 0 : d->n, err, sizeof(err));
	if (!s) {
		/* Logged when it starts failing and when the reason changes. */
		if (t->failures++ == 0 || strcmp(err, t->err) != 0)
			log_warn("register reload failed: %s; the register in use stays as it"
				 " was, retrying (every %d s at most)",
				 err, BACKOFF_MAX_MS / 1000);
		snprintf(t->err, sizeof(t->err), "%s", err);
		t->at_ms = clocks_mono_ms() + backoff_next(&t->backoff);
		return;
	}
	if (t->failures)
		log_info("register reloaded after %u failed attempts", t->failures);
	publish(r, s);
	dirty_clear(d);
	t->at_ms = 0;
	backoff_reset(&t->backoff);
	t->failures = 0;
	t->err[0] = '\0';
}

static void *
registry_thread(void *arg)
{
	struct registry *r = arg;
	struct backoff backoff;
	int warned = 0;
	struct dirty dirty = { 0 };
	struct retry retry;

	backoff_init(&backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	retry_clear(&retry);
	while (!atomic_load(&r->quit)) {
		struct pollfd pfd[2];
		PGnotify *n;
		int timeout = 200;

		if (!r->conn) {
			if (connect_and_load(r, &warned) < 0) {
				sleep_ms(r, backoff_next(&backoff));
			} else {
				/* Everything read, after what the NOTIFYs named;
				 * the hand-over steps are written at once. */
				backoff_reset(&backoff);
				dirty_clear(&dirty);
				retry_clear(&retry);
				r->steps_at_ms = 0;
			}
			continue;
		}
		if (dirty.any) {
			int64_t left = retry.at_ms - clocks_mono_ms();

			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		if (seed_wanted(r)) {
			int64_t left = r->seed_at_ms - clocks_mono_ms();

			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		if (handovers_queued(r)) {
			int64_t left = r->steps_at_ms - clocks_mono_ms();

			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		pfd[0].fd = PQsocket(r->conn);
		pfd[0].events = POLLIN;
		pfd[1].fd = r->req_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN) {
			eventfd_t v;

			if (eventfd_read(r->req_fd, &v) < 0) {
				/* EAGAIN: read by an earlier turn */
			}
		}
		if (!PQconsumeInput(r->conn) || PQstatus(r->conn) != CONNECTION_OK) {
			log_warn("register connection lost; reconnecting");
			PQfinish(r->conn);
			r->conn = NULL;
			continue;
		}
		while ((n = PQnotifies(r->conn)) != NULL) {
			note_site(&dirty, n->extra);
			PQfreemem(n);
		}
		/* The hand-over steps queued, in every turn (a stream of them
		 * holds nothing else back), before the reload that brings
		 * them back: a shard's owner waits for its HANDOVER_SENT in a
		 * snapshot. Our own NOTIFYs came with the write's answer. */
		if (handovers_queued(r) && clocks_mono_ms() >= r->steps_at_ms) {
			write_handovers(r);
			while ((n = PQnotifies(r->conn)) != NULL) {
				note_site(&dirty, n->extra);
				PQfreemem(n);
			}
		}
		/* A shard taken over waits for its state: before the register. */
		if (seed_wanted(r) && clocks_mono_ms() >= r->seed_at_ms) {
			load_shard_seed(r);
		} else if (atomic_exchange(&r->reseed, 0)) {
			char err[1024];
			struct registry_snapshot *s = load(r, NULL, 0, err, sizeof(err));

			if (s && !(s->seed = load_seed(r, r->first_list, err, sizeof(err)))) {
				registry_snapshot_free(s);
				s = NULL;
			}
			if (s) {
				/* Every site read: what the NOTIFYs named too. */
				publish(r, s);
				dirty_clear(&dirty);
				retry_clear(&retry);
			} else {
				log_warn("loading the open alerts again failed: %s; retrying", err);
				atomic_store(&r->reseed, 1);
				sleep_ms(r, 1000);
			}
		} else if (dirty.any && clocks_mono_ms() >= retry.at_ms) {
			reload(r, &dirty, &retry);
		}
	}
	dirty_clear(&dirty);
	PQfinish(r->conn);
	r->conn = NULL;
	return NULL;
}

int
registry_create(const char *conninfo, const char *default_tz, int wake_fd, int64_t seed_rows,
		const char *first_site, struct registry **ret_registry)
{
	struct registry *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	atomic_store(&r->seed_rows, seed_rows);
	r->wake_fd = wake_fd;
	r->seeds_tail = &r->seeds;
	backoff_init(&r->seed_backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	backoff_init(&r->steps_backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	r->req_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->conninfo = strdup(conninfo);
	r->default_tz = strdup(default_tz);
	if (first_site) {
		char *copy = strdup(first_site);

		r->first_list = copy ? text_array(&copy, 1) : NULL;
		free(copy);
	}
	if (!r->conninfo || !r->default_tz || (first_site && !r->first_list)) {
		registry_destroy(r);
		return -ENOMEM;
	}
	if (r->req_fd < 0) {
		err = -errno;
		registry_destroy(r);
		return err;
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
	while (r->seeds) {
		struct registry_seed *next = r->seeds->next;

		registry_seed_free(r->seeds);
		r->seeds = next;
	}
	if (r->req_fd >= 0)
		close(r->req_fd);
	free(r->steps);
	free(r->first_list);
	drop_blocks(r);
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
