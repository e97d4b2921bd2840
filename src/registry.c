/* registry.c - the register thread and the snapshot lookups.
 *
 * Sites, gates, zones and isolation orders (a few dozen a site) are arrays
 * of fixed-size structs that start with `char site[REG_ID], <id>[REG_ID]`,
 * so one comparator sorts them all and bsearch finds by (site, id).
 *
 * Households and cards (thousands a site) live in blocks, one per site:
 * a pool of NUL-terminated strings and two arrays sorted by id (strcmp)
 * whose entries are 32-bit offsets into that pool: a card is 8 bytes
 * (its id, and its household's id shared with the household entry; the
 * two flags in the top bits), a household 20 (id, building, unit, room,
 * size); building, unit and room strings are interned within the block.
 * The register thread builds a block, then seals it (arrays and pool cut
 * to size) and never changes it again; snapshots share blocks by reference
 * count, so a reload of one site costs one site's block. Blocks that tests
 * and tools build with registry_snapshot_add_*() stay unsealed (never
 * shared). */
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

#include "backoff.h"
#include "db.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 15000
/* NOTIFYs naming more sites than this between two loads reload everything. */
#define PARTIAL_MAX_SITES 64
/* A block's pool: offsets of 30 bits (the card's two flags take the rest). */
#define POOL_MAX (UINT32_C(1) << 30)
#define CARD_REVOKED (UINT32_C(1) << 31)
#define CARD_EXTRA (UINT32_C(1) << 30)
#define CARD_HH (POOL_MAX - 1)

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
};

struct hh_entry {
	uint32_t id, building, unit, room; /* offsets into the block's pool */
	uint32_t size;
};

struct card_entry {
	uint32_t id;	    /* offset into the block's pool */
	uint32_t household; /* offset of the household id | CARD_REVOKED | CARD_EXTRA */
};

struct reg_block {
	atomic_uint refs;
	uint32_t site; /* offset of the site's name */
	char *pool;
	uint32_t pool_len, pool_cap;
	struct hh_entry *hh;
	uint32_t nhh, hh_cap;
	struct card_entry *cards;
	uint32_t ncards, cards_cap;
	/* while building: building, unit and room strings, open addressing
	 * over offset + 1 (0 empty); freed by block_seal() */
	uint32_t *intern;
	uint32_t intern_cap, intern_used;
};

/* ---- blocks ---- */

static void
block_unref(struct reg_block *b)
{
	if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	free(b->pool);
	free(b->hh);
	free(b->cards);
	free(b->intern);
	free(b);
}

static struct reg_block *
block_ref(struct reg_block *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

static const char *
block_site(const struct reg_block *b)
{
	return b->pool + b->site;
}

/* Grows *arr (of *cap elements of `size`) to hold one more than `n`. */
static int
grow(void **arr, uint32_t *cap, uint32_t n, size_t size)
{
	uint32_t want;
	void *p;

	if (n < *cap)
		return 0;
	if (n >= UINT32_MAX / 2)
		return -E2BIG;
	want = *cap < 16 ? 16 : *cap + *cap / 2;
	p = realloc(*arr, (size_t)want * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = want;
	return 0;
}

/* Appends a string to the pool; its offset in *ret_off. */
static int
pool_add(struct reg_block *b, const char *str, uint32_t *ret_off)
{
	size_t len = strlen(str) + 1;

	if ((size_t)b->pool_len + len > POOL_MAX)
		return -E2BIG;
	if (b->pool_len + len > b->pool_cap) {
		size_t want = b->pool_cap < 256 ? 256 : (size_t)b->pool_cap + b->pool_cap / 2;
		char *p;

		if (want < (size_t)b->pool_len + len)
			want = (size_t)b->pool_len + len;
		if (want > POOL_MAX)
			want = POOL_MAX;
		p = realloc(b->pool, want);
		if (!p)
			return -ENOMEM;
		b->pool = p;
		b->pool_cap = (uint32_t)want;
	}
	memcpy(b->pool + b->pool_len, str, len);
	*ret_off = b->pool_len;
	b->pool_len += (uint32_t)len;
	return 0;
}

static uint32_t
hash_str(const char *str)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *str; str++)
		h = (h ^ (uint8_t)*str) * 16777619u;
	return h;
}

/* The pool offset of `str`, added the first time (interned). */
static int
intern(struct reg_block *b, const char *str, uint32_t *ret_off)
{
	uint32_t mask, i, off;
	int err;

	if (b->intern_used * 2 >= b->intern_cap) {
		uint32_t cap = b->intern_cap ? b->intern_cap * 2 : 64;
		uint32_t *t = calloc(cap, sizeof(*t));

		if (!t)
			return -ENOMEM;
		for (uint32_t k = 0; k < b->intern_cap; k++) {
			uint32_t v = b->intern[k];

			if (!v)
				continue;
			for (i = hash_str(b->pool + v - 1) & (cap - 1); t[i];
			     i = (i + 1) & (cap - 1))
				;
			t[i] = v;
		}
		free(b->intern);
		b->intern = t;
		b->intern_cap = cap;
	}
	mask = b->intern_cap - 1;
	for (i = hash_str(str) & mask; b->intern[i]; i = (i + 1) & mask) {
		if (strcmp(b->pool + b->intern[i] - 1, str) == 0) {
			*ret_off = b->intern[i] - 1;
			return 0;
		}
	}
	if ((err = pool_add(b, str, &off)) < 0)
		return err;
	b->intern[i] = off + 1;
	b->intern_used++;
	*ret_off = off;
	return 0;
}

static struct reg_block *
block_create(const char *site)
{
	struct reg_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	if (pool_add(b, site, &b->site) < 0) {
		block_unref(b);
		return NULL;
	}
	return b;
}

/* Cuts the arrays and the pool to size and drops the intern table: the
 * block's steady form. Shrinking never fails (a failed realloc keeps the
 * bigger block). */
static void
block_seal(struct reg_block *b)
{
	void *p;

	free(b->intern);
	b->intern = NULL;
	b->intern_cap = b->intern_used = 0;
	if (b->pool_cap > b->pool_len && (p = realloc(b->pool, b->pool_len))) {
		b->pool = p;
		b->pool_cap = b->pool_len;
	}
	if (b->hh_cap > b->nhh && b->nhh && (p = realloc(b->hh, b->nhh * sizeof(*b->hh)))) {
		b->hh = p;
		b->hh_cap = b->nhh;
	}
	if (b->cards_cap > b->ncards && b->ncards &&
	    (p = realloc(b->cards, b->ncards * sizeof(*b->cards)))) {
		b->cards = p;
		b->cards_cap = b->ncards;
	}
}

/* Index of the first household entry whose id is not below `id`;
 * *ret_found when it is `id`. */
static uint32_t
hh_pos(const struct reg_block *b, const char *id, int *ret_found)
{
	uint32_t lo = 0, hi = b->nhh;

	/* Loads come in order: the end is the usual place. */
	if (hi && strcmp(b->pool + b->hh[hi - 1].id, id) < 0) {
		*ret_found = 0;
		return hi;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (strcmp(b->pool + b->hh[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = lo < b->nhh && strcmp(b->pool + b->hh[lo].id, id) == 0;
	return lo;
}

static uint32_t
card_pos(const struct reg_block *b, const char *id, int *ret_found)
{
	uint32_t lo = 0, hi = b->ncards;

	if (hi && strcmp(b->pool + b->cards[hi - 1].id, id) < 0) {
		*ret_found = 0;
		return hi;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (strcmp(b->pool + b->cards[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = lo < b->ncards && strcmp(b->pool + b->cards[lo].id, id) == 0;
	return lo;
}

static int
block_add_household(struct reg_block *b, const char *id, const char *building, const char *unit,
		    const char *room, int size)
{
	struct hh_entry e;
	int found, err;
	uint32_t at = hh_pos(b, id, &found);

	if (found)
		return -EEXIST;
	if ((err = grow((void **)&b->hh, &b->hh_cap, b->nhh, sizeof(*b->hh))) < 0 ||
	    (err = pool_add(b, id, &e.id)) < 0 || (err = intern(b, building, &e.building)) < 0 ||
	    (err = intern(b, unit, &e.unit)) < 0 || (err = intern(b, room, &e.room)) < 0)
		return err;
	e.size = size < 0 ? 0 : size > 255 ? 255 : (uint32_t)size;
	memmove(&b->hh[at + 1], &b->hh[at], (b->nhh - at) * sizeof(*b->hh));
	b->hh[at] = e;
	b->nhh++;
	return 0;
}

static int
block_add_card(struct reg_block *b, const char *id, const char *household, int revoked, int extra)
{
	struct card_entry e;
	int found, hh_found, err;
	uint32_t at = card_pos(b, id, &found), hh, hat;

	if (found)
		return -EEXIST;
	hat = hh_pos(b, household, &hh_found);
	if ((err = grow((void **)&b->cards, &b->cards_cap, b->ncards, sizeof(*b->cards))) < 0 ||
	    (err = pool_add(b, id, &e.id)) < 0)
		return err;
	/* The household's id is the household entry's; one not registered
	 * (PostgreSQL's foreign key allows none) gets a string of its own. */
	if (hh_found)
		hh = b->hh[hat].id;
	else if ((err = intern(b, household, &hh)) < 0)
		return err;
	e.household = hh | (revoked ? CARD_REVOKED : 0) | (extra ? CARD_EXTRA : 0);
	memmove(&b->cards[at + 1], &b->cards[at], (b->ncards - at) * sizeof(*b->cards));
	b->cards[at] = e;
	b->ncards++;
	return 0;
}

static size_t
block_bytes(const struct reg_block *b)
{
	return sizeof(*b) + b->pool_cap + (size_t)b->hh_cap * sizeof(*b->hh) +
		(size_t)b->cards_cap * sizeof(*b->cards) +
		(size_t)b->intern_cap * sizeof(*b->intern);
}

/* Index of the first block whose site is not below `site` in blocks[0..n). */
static size_t
block_index(struct reg_block *const *blocks, size_t n, const char *site, int *ret_found)
{
	size_t lo = 0, hi = n;

	if (hi && strcmp(block_site(blocks[hi - 1]), site) < 0) {
		*ret_found = 0;
		return hi;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(block_site(blocks[mid]), site) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = lo < n && strcmp(block_site(blocks[lo]), site) == 0;
	return lo;
}

static const struct reg_block *
find_block(const struct registry_snapshot *s, const char *site)
{
	int found;
	size_t i = block_index(s->blocks, s->nblocks, site, &found);

	return found ? s->blocks[i] : NULL;
}

/* The block of `site` in snapshot s, created (empty, in its place) when
 * there is none; NULL when out of memory. */
static struct reg_block *
snapshot_block(struct registry_snapshot *s, const char *site)
{
	int found;
	size_t i = block_index(s->blocks, s->nblocks, site, &found);
	struct reg_block **arr, *b;

	if (found)
		return s->blocks[i];
	arr = realloc(s->blocks, (s->nblocks + 1) * sizeof(*arr));
	if (!arr)
		return NULL;
	s->blocks = arr;
	if (!(b = block_create(site)))
		return NULL;
	memmove(&arr[i + 1], &arr[i], (s->nblocks - i) * sizeof(*arr));
	arr[i] = b;
	s->nblocks++;
	return b;
}

int
registry_snapshot_add_household(struct registry_snapshot *s, const char *site,
				const char *household, const char *building, const char *unit,
				const char *room, int size)
{
	struct reg_block *b = snapshot_block(s, site);
	int err;

	if (!b)
		return -ENOMEM;
	/* Not sealed: the block keeps its room to grow and its intern table
	 * (sealing after every add made n adds copy the block n times and
	 * stored every building, unit and room again). */
	err = block_add_household(b, household, building, unit, room, size);
	if (err == 0)
		s->nhouseholds++;
	return err;
}

int
registry_snapshot_add_card(struct registry_snapshot *s, const char *site, const char *card,
			   const char *household, int revoked, int extra)
{
	struct reg_block *b = snapshot_block(s, site);
	int err;

	if (!b)
		return -ENOMEM;
	err = block_add_card(b, card, household, revoked, extra);
	if (err == 0)
		s->ncards++;
	return err;
}

size_t
registry_snapshot_bytes(const struct registry_snapshot *s)
{
	size_t n = sizeof(*s) + s->nblocks * sizeof(*s->blocks) + s->nsites * sizeof(*s->sites) +
		s->ngates * sizeof(*s->gates) + s->nzones * sizeof(*s->zones) +
		s->nisolations * sizeof(*s->isolations);

	for (size_t i = 0; i < s->nblocks; i++)
		n += block_bytes(s->blocks[i]);
	return n;
}

/* ---- lookups ---- */

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
registry_household(const struct registry_snapshot *s, const char *site, const char *hh,
		   struct reg_household *ret)
{
	const struct reg_block *b = find_block(s, site);
	const struct hh_entry *e;
	uint32_t at;
	int found;

	if (!b)
		return NULL;
	at = hh_pos(b, hh, &found);
	if (!found)
		return NULL;
	e = &b->hh[at];
	ret->site = block_site(b);
	ret->household = b->pool + e->id;
	ret->building = b->pool + e->building;
	ret->unit = b->pool + e->unit;
	ret->room = b->pool + e->room;
	ret->size = (int)e->size;
	return ret;
}

const struct reg_card *
registry_card(const struct registry_snapshot *s, const char *site, const char *card,
	      struct reg_card *ret)
{
	const struct reg_block *b = find_block(s, site);
	const struct card_entry *e;
	uint32_t at;
	int found;

	if (!b)
		return NULL;
	at = card_pos(b, card, &found);
	if (!found)
		return NULL;
	e = &b->cards[at];
	ret->site = block_site(b);
	ret->card = b->pool + e->id;
	ret->household = b->pool + (e->household & CARD_HH);
	ret->revoked = (e->household & CARD_REVOKED) != 0;
	ret->extra = (e->household & CARD_EXTRA) != 0;
	return ret;
}

bool
registry_site_has_cards(const struct registry_snapshot *s, const char *site)
{
	const struct reg_block *b = find_block(s, site);

	return b && b->ncards > 0;
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
	const struct reg_isolation *hit =
		find(s->isolations, s->nisolations, sizeof(*s->isolations), site, hh);
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
	for (size_t i = 0; i < s->nblocks; i++)
		block_unref(s->blocks[i]);
	free(s->blocks);
	free(s->sites);
	free(s->gates);
	free(s->zones);
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
		*cur = snapshot_block(s, site);
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
	if ((err = grow((void **)&b->hh, &b->hh_cap, b->nhh, sizeof(*b->hh))) < 0 ||
	    (err = pool_add(b, PQgetvalue(res, 0, 1), &e.id)) < 0 ||
	    (err = intern(b, PQgetvalue(res, 0, 2), &e.building)) < 0 ||
	    (err = intern(b, PQgetvalue(res, 0, 3), &e.unit)) < 0 ||
	    (err = intern(b, PQgetvalue(res, 0, 4), &e.room)) < 0)
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
	at = hh_pos(b, household, &found);
	if ((err = grow((void **)&b->cards, &b->cards_cap, b->ncards, sizeof(*b->cards))) < 0 ||
	    (err = pool_add(b, PQgetvalue(res, 0, 1), &e.id)) < 0)
		return err;
	if (found)
		hh = b->hh[at].id;
	else if ((err = intern(b, household, &hh)) < 0)
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

	if (sites) {
		size_t len = 3;

		/* {"a","b"}: ids are [A-Za-z0-9_-] (notify_site()), quoted so that
		 * none reads as NULL. */
		for (size_t i = 0; i < nsites; i++)
			len += strlen(sites[i]) + 3;
		if (!(list = malloc(len))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		strcpy(list, "{");
		for (size_t i = 0; i < nsites; i++) {
			strcat(list, i ? ",\"" : "\"");
			strcat(list, sites[i]);
			strcat(list, "\"");
		}
		strcat(list, "}");
	}
	where = sites ? " WHERE site = ANY($1::text[])" : "";
	snprintf(sql, sizeof(sql), HH_SQL, where);
	failed = stream(r, s, sql, list, hh_row, err, errlen) < 0;
	for (size_t i = 0; !failed && i < s->nblocks; i++)
		qsort_r(s->blocks[i]->hh, s->blocks[i]->nhh, sizeof(*s->blocks[i]->hh), cmp_hh,
			s->blocks[i]->pool);
	snprintf(sql, sizeof(sql), CARDS_SQL, where);
	failed = failed || stream(r, s, sql, list, card_row, err, errlen) < 0;
	free(list);
	for (size_t i = 0; !failed && i < s->nblocks; i++) {
		qsort_r(s->blocks[i]->cards, s->blocks[i]->ncards, sizeof(*s->blocks[i]->cards),
			cmp_card, s->blocks[i]->pool);
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
	qsort(s->isolations, s->nisolations, sizeof(*s->isolations), cmp_pair);

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

/* A stored event's rule time (normalize.c, norm_finish_event): its device
 * time, or its receive time when the device clock was off. */
#define RULE_TIME(t) \
	"CASE WHEN 'clock_skew' = ANY(" t ".flags) THEN " t ".received_at ELSE " t ".ts END"

/* The resolved calls: the last RULES_RESOLVED_MAX (rules.c) of them. A
 * sealed gate's latest `closed` and latest breach (a status open or
 * forced, a pass) received in the last 30 days, of gates registered
 * sealed: two rows at most per gate (rules.c, struct seal). */
#define SEEN_SQL                                                                                                         \
	"SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint"                            \
	" FROM gate_events WHERE received_at > now() - interval '1 day' GROUP BY site, gate"                             \
	" UNION ALL SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint"                 \
	" FROM gate_status WHERE received_at > now() - interval '1 day' GROUP BY site, gate"                             \
	" UNION ALL SELECT 'zone', site, zone, '', (extract(epoch FROM max(ts)) * 1e6)::bigint"                          \
	" FROM disinfections WHERE ts > now() - interval '7 days' GROUP BY site, zone"                                   \
	" UNION ALL SELECT 'check', site, household, coalesce(person, ''), (extract(epoch FROM max(ts)) * 1e6)::bigint"  \
	" FROM isolation_checks WHERE ts > now() - interval '60 days' GROUP BY site, household, person"                  \
	" UNION ALL SELECT 'check', site, household, '', (extract(epoch FROM max(ts)) * 1e6)::bigint"                    \
	" FROM isolation_checks WHERE ts > now() - interval '60 days' GROUP BY site, household"                          \
	" UNION ALL SELECT 'call', site, call_id, coalesce(category, ''), (extract(epoch FROM opened_at) * 1e6)::bigint" \
	" FROM hotline_calls WHERE status = 'open' AND urgent AND opened_at IS NOT NULL"                                 \
	" UNION ALL SELECT * FROM (SELECT 'call_resolved', site, call_id, '',"                                           \
	" (extract(epoch FROM coalesce(resolved_at, updated_at)) * 1e6)::bigint"                                         \
	" FROM hotline_calls WHERE status = 'resolved'"                                                                  \
	" ORDER BY coalesce(resolved_at, updated_at) DESC LIMIT 10000) r"                                                \
	" UNION ALL SELECT * FROM (SELECT 'exit', g.site, c.household, '', (extract(epoch FROM g.ts) * 1e6)::bigint"     \
	" FROM gate_events g JOIN cards c ON c.site = g.site AND c.card = g.card"                                        \
	" WHERE g.direction = 'out' AND g.ts > now() - interval '7 days' ORDER BY g.ts) e"                               \
	" UNION ALL SELECT CASE WHEN s.state = 'closed' THEN 'seal_closed' ELSE 'seal_breach' END,"                      \
	" s.site, s.gate, '', (extract(epoch FROM max(" RULE_TIME(                                                       \
		"s") ")) * 1e6)::bigint"                                                                                 \
		     " FROM gates g JOIN gate_status s ON s.site = g.site AND s.gate = g.gate"                           \
		     " WHERE g.state = 'sealed' AND s.state IN ('closed', 'open', 'forced')"                             \
		     " AND s.received_at > now() - interval '30 days'"                                                   \
		     " GROUP BY 1, s.site, s.gate"                                                                       \
		     " UNION ALL SELECT 'seal_breach', e.site, e.gate, '',"                                              \
		     " (extract(epoch FROM max(" RULE_TIME(                                                              \
			     "e") ")) * 1e6)::bigint"                                                                    \
				  " FROM gates g JOIN gate_events e ON e.site = g.site AND e.gate = g.gate"              \
				  " WHERE g.state = 'sealed' AND e.received_at > now() - interval '30 days'"             \
				  " GROUP BY e.site, e.gate"

/* The open alerts: aggregates first, then the oldest $1 of each site and
 * kind (the bound, and as many again to fold at most in one pass; the
 * last column says whether a site and kind has more). */
#define ALERTS_SQL                                                                                 \
	"SELECT alert_id, site, kind, severity, state, subject, event_key, coalesce(gate, ''),"    \
	" coalesce(household, ''), coalesce(card, ''), coalesce(zone, ''), coalesce(call_id, '')," \
	" coalesce((temp_c * 10)::int, -32768), (extract(epoch FROM raised_at) * 1e6)::bigint,"    \
	" (extract(epoch FROM updated_at) * 1e6)::bigint, count, coalesce(reason, ''),"            \
	" coalesce(by_whom, ''), coalesce(distinct_subjects, 0), coalesce(sample, ''),"            \
	" (total > $1)::int FROM (SELECT *, row_number() OVER w AS rank, count(*) OVER"            \
	" (PARTITION BY site, kind, subject = '*') AS total FROM alerts"                           \
	" WHERE state <> 'resolved' WINDOW w AS (PARTITION BY site, kind, subject = '*'"           \
	" ORDER BY raised_at, alert_id)) a WHERE rank <= $1"                                       \
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

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
		t->at_ms = now_ms() + backoff_next(&t->backoff);
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
		struct pollfd pfd;
		PGnotify *n;
		int timeout = 200;

		if (!r->conn) {
			if (connect_and_load(r, &warned) < 0) {
				sleep_ms(r, backoff_next(&backoff));
			} else {
				/* Everything read, after what the NOTIFYs named. */
				backoff_reset(&backoff);
				dirty_clear(&dirty);
				retry_clear(&retry);
			}
			continue;
		}
		if (dirty.any) {
			int64_t left = retry.at_ms - now_ms();

			timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
		}
		pfd.fd = PQsocket(r->conn);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
			break;
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
		if (atomic_exchange(&r->reseed, 0)) {
			char err[1024];
			struct registry_snapshot *s = load(r, NULL, 0, err, sizeof(err));

			if (s && !(s->seed = load_seed(r, err, sizeof(err)))) {
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
		} else if (dirty.any && now_ms() >= retry.at_ms) {
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
