/* replay.c - the last distinct payloads of each topic, bounded by LRU.
 *
 * Topics live in an array of slots linked in delivery order (head: the
 * most recent); an open-addressing index (linear probing, deletion by
 * backward shift) maps a topic hash to its slot. */
#include "replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#define NIL UINT32_MAX
#define SAVE_MAGIC "CRP1"
#define SAVE_VERSION 2u /* 1: 8 payloads a topic */
#define SAVE_HEADER 48	/* magic, version, spool id (32), pos */
#define SAVE_ENTRY (8 * (2 + REPLAY_DEPTH))

struct slot {
	uint64_t topic;
	uint64_t h[REPLAY_DEPTH]; /* latest first */
	uint32_t n;
	uint32_t prev, next; /* towards head (more recent), towards tail */
};

struct replay {
	struct slot *slots;
	uint32_t nslots, cap, max;
	uint32_t head, tail;
	uint32_t *index; /* slot + 1; 0: empty */
	uint32_t index_mask;
	uint64_t evicted;
};

_Static_assert(sizeof(struct slot) <= 32, "32 bytes a topic, and 8 of index at most");

int
replay_create(uint32_t max_topics, struct replay **ret_replay)
{
	struct replay *r = calloc(1, sizeof(*r));

	if (!r || max_topics == 0) {
		free(r);
		return -ENOMEM;
	}
	r->max = max_topics;
	r->head = r->tail = NIL;
	*ret_replay = r;
	return 0;
}

void
replay_destroy(struct replay *r)
{
	if (!r)
		return;
	free(r->slots);
	free(r->index);
	free(r);
}

uint64_t
replay_topic_hash(const char *topic, size_t len)
{
	return XXH3_64bits(topic, len);
}

uint64_t
replay_payload_hash(const void *payload, size_t stored_len, size_t orig_len)
{
	return XXH3_64bits_withSeed(payload, stored_len, (XXH64_hash_t)orig_len);
}

/* The index position holding `topic`, or the empty one where it would go. */
static uint32_t
probe(const struct replay *r, uint64_t topic)
{
	uint32_t i = (uint32_t)(topic ^ (topic >> 32)) & r->index_mask;

	while (r->index[i] && r->slots[r->index[i] - 1].topic != topic)
		i = (i + 1) & r->index_mask;
	return i;
}

static const struct slot *
find(const struct replay *r, uint64_t topic)
{
	uint32_t i;

	if (!r->index)
		return NULL;
	i = probe(r, topic);
	return r->index[i] ? &r->slots[r->index[i] - 1] : NULL;
}

int
replay_seen(const struct replay *r, uint64_t topic, uint64_t payload)
{
	const struct slot *s = find(r, topic);

	if (!s)
		return 0;
	for (uint32_t k = 0; k < s->n; k++)
		if (s->h[k] == payload)
			return 1;
	return 0;
}

static void
unlink_slot(struct replay *r, uint32_t i)
{
	struct slot *s = &r->slots[i];

	if (s->prev != NIL)
		r->slots[s->prev].next = s->next;
	else
		r->head = s->next;
	if (s->next != NIL)
		r->slots[s->next].prev = s->prev;
	else
		r->tail = s->prev;
}

static void
push_head(struct replay *r, uint32_t i)
{
	struct slot *s = &r->slots[i];

	s->prev = NIL;
	s->next = r->head;
	if (r->head != NIL)
		r->slots[r->head].prev = i;
	r->head = i;
	if (r->tail == NIL)
		r->tail = i;
}

/* Removes index entry `i`, shifting back the entries of its cluster that
 * would no longer be found (Knuth 6.4, algorithm R). */
static void
index_delete(struct replay *r, uint32_t i)
{
	uint32_t j = i;

	r->index[i] = 0;
	for (;;) {
		uint32_t home;
		uint64_t t;

		j = (j + 1) & r->index_mask;
		if (!r->index[j])
			return;
		t = r->slots[r->index[j] - 1].topic;
		home = (uint32_t)(t ^ (t >> 32)) & r->index_mask;
		/* leave it when its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		r->index[i] = r->index[j];
		r->index[j] = 0;
		i = j;
	}
}

/* Makes room for one more slot: grows the array (and the index, kept at
 * most half full). Returns 0 or -ENOMEM. */
static int
grow(struct replay *r)
{
	uint32_t cap = r->cap ? r->cap * 2 : 64;
	uint32_t icap, *index;
	struct slot *slots;

	if (cap > r->max)
		cap = r->max;
	slots = realloc(r->slots, (size_t)cap * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	r->slots = slots;
	for (icap = 128; icap < 2 * (size_t)cap; icap *= 2)
		;
	if (icap - 1 != r->index_mask || !r->index) {
		index = calloc(icap, sizeof(*index));
		if (!index)
			return -ENOMEM; /* slots grew; the old index still serves */
		free(r->index);
		r->index = index;
		r->index_mask = icap - 1;
		for (uint32_t k = 0; k < r->nslots; k++)
			r->index[probe(r, r->slots[k].topic)] = k + 1;
	}
	r->cap = cap;
	return 0;
}

int
replay_note(struct replay *r, uint64_t topic, uint64_t payload)
{
	uint32_t i, at, k;
	struct slot *s;

	if (r->index && r->index[at = probe(r, topic)]) {
		i = r->index[at] - 1;
		unlink_slot(r, i);
	} else {
		if (r->nslots == r->max) {
			/* full: the least recently delivered topic goes */
			i = r->tail;
			unlink_slot(r, i);
			index_delete(r, probe(r, r->slots[i].topic));
			r->evicted++;
		} else {
			if (r->nslots == r->cap && grow(r) < 0)
				return -ENOMEM;
			i = r->nslots++;
		}
		r->slots[i].topic = topic;
		r->slots[i].n = 0;
		r->index[probe(r, topic)] = i + 1;
	}
	push_head(r, i);
	s = &r->slots[i];
	for (k = 0; k < s->n && s->h[k] != payload; k++)
		;
	if (k == s->n && s->n < REPLAY_DEPTH)
		s->n++;
	if (k == s->n)
		k = s->n - 1; /* not there and full: the oldest goes */
	memmove(&s->h[1], &s->h[0], k * sizeof(s->h[0]));
	s->h[0] = payload;
	return 0;
}

int
replay_copy(struct replay **dst, const struct replay *src)
{
	struct replay *c = *dst;

	if (!c) {
		if (!(c = calloc(1, sizeof(*c))))
			return -ENOMEM;
		*dst = c;
	}
	if (c->cap < src->nslots) {
		struct slot *slots = realloc(c->slots, (size_t)src->cap * sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		c->slots = slots;
		c->cap = src->cap;
	}
	if (src->nslots) /* an empty memory may have no slots at all (NULL) */
		memcpy(c->slots, src->slots, (size_t)src->nslots * sizeof(*c->slots));
	c->nslots = src->nslots;
	c->max = src->max;
	c->head = src->head;
	c->tail = src->tail;
	c->evicted = src->evicted;
	return 0;
}

void
replay_get_stats(const struct replay *r, struct replay_stats *ret_stats)
{
	ret_stats->topics = r->nslots;
	ret_stats->evicted = r->evicted;
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int
replay_save(const struct replay *r, const char *spool_id, uint64_t pos, void **ret_buf,
	    size_t *ret_len)
{
	size_t len = SAVE_HEADER + (size_t)r->nslots * SAVE_ENTRY + 8;
	uint8_t *buf = calloc(1, len), *p;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, SAVE_MAGIC, 4);
	buf[4] = (uint8_t)SAVE_VERSION;
	strncpy((char *)buf + 8, spool_id, 32);
	put_u64(buf + 40, pos);
	p = buf + SAVE_HEADER;
	for (uint32_t i = r->tail; i != NIL; i = r->slots[i].prev) {
		const struct slot *s = &r->slots[i];

		put_u64(p, s->topic);
		put_u64(p + 8, s->n);
		for (uint32_t k = 0; k < REPLAY_DEPTH; k++)
			put_u64(p + 16 + 8 * k, k < s->n ? s->h[k] : 0);
		p += SAVE_ENTRY;
	}
	put_u64(p, XXH3_64bits(buf, (size_t)(p - buf)));
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static void
clear(struct replay *r)
{
	r->nslots = 0;
	r->head = r->tail = NIL;
	if (r->index)
		memset(r->index, 0, ((size_t)r->index_mask + 1) * sizeof(*r->index));
}

int
replay_load(struct replay *r, const void *buf, size_t len, const char *spool_id, uint64_t *ret_pos)
{
	const uint8_t *b = buf, *p;
	char id[33];
	size_t n;

	clear(r);
	if (len < SAVE_HEADER + 8 || (len - SAVE_HEADER - 8) % SAVE_ENTRY ||
	    memcmp(b, SAVE_MAGIC, 4) || b[4] != SAVE_VERSION ||
	    get_u64(b + len - 8) != XXH3_64bits(b, len - 8))
		return -EINVAL;
	memcpy(id, b + 8, 32);
	id[32] = '\0';
	if (strncmp(id, spool_id, 32) != 0)
		return -ESTALE;
	n = (len - SAVE_HEADER - 8) / SAVE_ENTRY;
	for (p = b + SAVE_HEADER; n--; p += SAVE_ENTRY) {
		uint64_t count = get_u64(p + 8);

		if (count == 0 || count > REPLAY_DEPTH) {
			clear(r);
			return -EINVAL;
		}
		/* the oldest first: each note puts its payload in front */
		for (uint64_t k = count; k-- > 0;)
			if (replay_note(r, get_u64(p), get_u64(p + 16 + 8 * k)) < 0) {
				clear(r);
				return -ENOMEM;
			}
	}
	*ret_pos = get_u64(b + 40);
	return 0;
}
