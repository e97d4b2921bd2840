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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

/* ---- blocks ---- */

void
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

struct reg_block *
block_ref(struct reg_block *b)
{
	atomic_fetch_add(&b->refs, 1);
	return b;
}

const char *
block_site(const struct reg_block *b)
{
	return b->pool + b->site;
}

/* Grows *arr (of *cap elements of `size`) to hold one more than `n`. */
int
block_grow(void **arr, uint32_t *cap, uint32_t n, size_t size)
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
int
block_pool_add(struct reg_block *b, const char *str, uint32_t *ret_off)
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
int
block_intern(struct reg_block *b, const char *str, uint32_t *ret_off)
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
	if ((err = block_pool_add(b, str, &off)) < 0)
		return err;
	b->intern[i] = off + 1;
	b->intern_used++;
	*ret_off = off;
	return 0;
}

/* Block serials: never 0, never reused. */
static _Atomic uint64_t block_serials;

static struct reg_block *
block_create(const char *site)
{
	struct reg_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->serial = atomic_fetch_add(&block_serials, 1) + 1;
	if (block_pool_add(b, site, &b->site) < 0) {
		block_unref(b);
		return NULL;
	}
	return b;
}

/* Cuts the arrays and the pool to size and drops the intern table: the
 * block's steady form. Shrinking never fails (a failed realloc keeps the
 * bigger block). */
void
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
uint32_t
block_hh_pos(const struct reg_block *b, const char *id, int *ret_found)
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
	uint32_t at = block_hh_pos(b, id, &found);

	if (found)
		return -EEXIST;
	if ((err = block_grow((void **)&b->hh, &b->hh_cap, b->nhh, sizeof(*b->hh))) < 0 ||
	    (err = block_pool_add(b, id, &e.id)) < 0 ||
	    (err = block_intern(b, building, &e.building)) < 0 ||
	    (err = block_intern(b, unit, &e.unit)) < 0 ||
	    (err = block_intern(b, room, &e.room)) < 0)
		return err;
	e.size = size < 0 ? 0 : size > 255 ? 255 : (uint32_t)size;
	memmove(&b->hh[at + 1], &b->hh[at], (b->nhh - at) * sizeof(*b->hh));
	b->hh[at] = e;
	b->nhh++;
	b->serial = atomic_fetch_add(&block_serials, 1) + 1;
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
	hat = block_hh_pos(b, household, &hh_found);
	if ((err = block_grow((void **)&b->cards, &b->cards_cap, b->ncards, sizeof(*b->cards))) <
		    0 ||
	    (err = block_pool_add(b, id, &e.id)) < 0)
		return err;
	/* The household's id is the household entry's; one not registered
	 * (PostgreSQL's foreign key allows none) gets a string of its own. */
	if (hh_found)
		hh = b->hh[hat].id;
	else if ((err = block_intern(b, household, &hh)) < 0)
		return err;
	e.household = hh | (revoked ? CARD_REVOKED : 0) | (extra ? CARD_EXTRA : 0);
	memmove(&b->cards[at + 1], &b->cards[at], (b->ncards - at) * sizeof(*b->cards));
	b->cards[at] = e;
	b->ncards++;
	b->serial = atomic_fetch_add(&block_serials, 1) + 1;
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
struct reg_block *
registry_snapshot_block(struct registry_snapshot *s, const char *site)
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
	struct reg_block *b = registry_snapshot_block(s, site);
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
	struct reg_block *b = registry_snapshot_block(s, site);
	int err;

	if (!b)
		return -ENOMEM;
	err = block_add_card(b, card, household, revoked, extra);
	if (err == 0)
		s->ncards++;
	return err;
}

int
registry_snapshot_add_site(struct registry_snapshot *s, const char *site, unsigned handover)
{
	struct reg_site *n;
	size_t at = 0, len = strlen(site);

	if (len == 0 || len >= REG_ID)
		return -EINVAL;
	while (at < s->nsites && strcmp(s->sites[at].site, site) < 0)
		at++;
	if (at < s->nsites && strcmp(s->sites[at].site, site) == 0)
		return -EEXIST;
	n = realloc(s->sites, (s->nsites + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->sites = n;
	memmove(&n[at + 1], &n[at], (s->nsites - at) * sizeof(*n));
	memset(&n[at], 0, sizeof(*n));
	memcpy(n[at].site, site, len + 1);
	n[at].handover = handover;
	s->nsites++;
	return 0;
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

/* Orders structs that start with `char site[REG_ID], <id>[REG_ID]`. */
int
registry_cmp_pair(const void *a, const void *b)
{
	int c = strcmp(a, b);

	return c ? c : strcmp((const char *)a + REG_ID, (const char *)b + REG_ID);
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
	return bsearch(key, base, n, size, registry_cmp_pair);
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
	at = block_hh_pos(b, hh, &found);
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

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* A card's household is an offset into its block's pool (the household
 * entry's own id when registered, else an interned string): one offset per
 * household, so the cards group by it. Each (offset << 32 | index) sorted
 * groups a household's cards, in index order (the cards array is sorted by
 * id). */
int
registry_ordinary_cards(const struct registry_snapshot *s, size_t min,
			bool (*walk_site)(void *arg, const char *site, uint64_t serial),
			int (*fn)(void *arg, const char *site, const char *household,
				  const char *const *cards, size_t n),
			void *arg)
{
	uint64_t *keys = NULL;
	const char **ids = NULL;
	size_t cap = 0;
	int err = 0;

	if (min < 1)
		min = 1;
	for (size_t i = 0; i < s->nblocks && err >= 0; i++) {
		const struct reg_block *b = s->blocks[i];
		size_t n = 0;

		if ((walk_site && !walk_site(arg, block_site(b), b->serial)) || b->ncards < min)
			continue;
		if (b->ncards > cap) {
			uint64_t *k = realloc(keys, b->ncards * sizeof(*keys));
			const char **p;

			if (!k) {
				err = -ENOMEM;
				break;
			}
			keys = k;
			if (!(p = realloc(ids, b->ncards * sizeof(*ids)))) {
				err = -ENOMEM;
				break;
			}
			ids = p;
			cap = b->ncards;
		}
		for (uint32_t c = 0; c < b->ncards; c++) {
			uint32_t h = b->cards[c].household;

			if (!(h & (CARD_REVOKED | CARD_EXTRA)))
				keys[n++] = (uint64_t)(h & CARD_HH) << 32 | c;
		}
		if (n > 1)
			qsort(keys, n, sizeof(*keys), cmp_u64);
		for (size_t lo = 0, hi; lo < n && err >= 0; lo = hi) {
			for (hi = lo + 1; hi < n && keys[hi] >> 32 == keys[lo] >> 32; hi++)
				;
			if (hi - lo < min)
				continue;
			for (size_t k = lo; k < hi; k++)
				ids[k - lo] = b->pool + b->cards[(uint32_t)keys[k]].id;
			err = fn(arg, block_site(b), b->pool + (keys[lo] >> 32), ids, hi - lo);
		}
	}
	free(keys);
	free(ids);
	return err < 0 ? err : 0;
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
	while (first > s->isolations && registry_cmp_pair(first - 1, hit) == 0)
		first--;
	while (last + 1 < s->isolations + s->nisolations && registry_cmp_pair(last + 1, hit) == 0)
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
	registry_seed_free(s->seed);
	free(s);
}

void
registry_seed_free(struct registry_seed *seed)
{
	if (!seed)
		return;
	free(seed->alerts);
	free(seed->seen);
	free(seed->shard_tags);
	free(seed);
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
