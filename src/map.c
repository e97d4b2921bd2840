/* map.c - open addressing with linear probing and tombstones; grows at
 * 70 % use. Keys are copied; values are the caller's. */
#include "map.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tombstone;
#define MAP_TOMBSTONE (&tombstone)

/* FNV-1a */
static size_t
hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

void
map_init(struct map *m)
{
	memset(m, 0, sizeof(*m));
}

void
map_finish(struct map *m, void (*free_value)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		char *k = m->slots[i].key;

		if (!k || k == MAP_TOMBSTONE)
			continue;
		free(k);
		if (free_value)
			free_value(m->slots[i].value);
	}
	free(m->slots);
	map_init(m);
}

static struct map_slot *
lookup(const struct map *m, const char *key)
{
	size_t mask, i;

	if (m->cap == 0)
		return NULL;
	mask = m->cap - 1;
	for (i = hash(key) & mask;; i = (i + 1) & mask) {
		struct map_slot *s = &m->slots[i];

		if (!s->key)
			return NULL;
		if (s->key != MAP_TOMBSTONE && strcmp(s->key, key) == 0)
			return s;
	}
}

void *
map_get(const struct map *m, const char *key)
{
	struct map_slot *s = lookup(m, key);

	return s ? s->value : NULL;
}

static int
grow(struct map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct map_slot *old = m->slots, *slots;
	size_t oldcap = m->cap;

	/* Only tombstones: rehash at the same size. */
	if (m->len * 2 < m->cap)
		cap = m->cap;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	m->slots = slots;
	m->cap = cap;
	m->used = m->len;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].key || old[i].key == MAP_TOMBSTONE)
			continue;
		for (j = hash(old[i].key) & (cap - 1); slots[j].key; j = (j + 1) & (cap - 1))
			;
		slots[j] = old[i];
	}
	free(old);
	return 0;
}

int
map_put(struct map *m, const char *key, void *value, void **ret_old)
{
	struct map_slot *s = lookup(m, key);
	size_t i, mask;
	char *copy;

	if (ret_old)
		*ret_old = NULL;
	if (s) {
		if (ret_old)
			*ret_old = s->value;
		s->value = value;
		return 0;
	}
	if ((m->used + 1) * 10 >= m->cap * 7 && grow(m) < 0)
		return -ENOMEM;
	copy = strdup(key);
	if (!copy)
		return -ENOMEM;
	mask = m->cap - 1;
	for (i = hash(key) & mask; m->slots[i].key && m->slots[i].key != MAP_TOMBSTONE;
	     i = (i + 1) & mask)
		;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i].key = copy;
	m->slots[i].value = value;
	m->len++;
	return 0;
}

void *
map_get_or_make(struct map *m, const char *key, size_t size)
{
	void *v = map_get(m, key);

	if (v)
		return v;
	if (!(v = calloc(1, size)) || map_put(m, key, v, NULL) < 0) {
		free(v);
		return NULL;
	}
	return v;
}

void *
map_remove(struct map *m, const char *key)
{
	struct map_slot *s = lookup(m, key);
	void *v;

	if (!s)
		return NULL;
	v = s->value;
	free(s->key);
	s->key = MAP_TOMBSTONE;
	s->value = NULL;
	m->len--;
	return v;
}

int
map_next(const struct map *m, size_t *iter, const char **ret_key, void **ret_value)
{
	while (*iter < m->cap) {
		struct map_slot *s = &m->slots[(*iter)++];

		if (s->key && s->key != MAP_TOMBSTONE) {
			*ret_key = s->key;
			*ret_value = s->value;
			return 1;
		}
	}
	return 0;
}
