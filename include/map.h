/* map.h - a string-keyed hash map (open addressing, linear probing) */
#ifndef CORDON_MAP_H
#define CORDON_MAP_H

#include <stddef.h>

struct map {
	struct map_slot *slots;
	size_t cap;  /* a power of two, or 0 */
	size_t len;  /* live entries */
	size_t used; /* live + tombstones */
};

struct map_slot {
	char *key; /* NULL: empty; MAP_TOMBSTONE: deleted */
	void *value;
};

void map_init(struct map *m);
/* Frees the keys; calls free_value (if not NULL) on each value. */
void map_finish(struct map *m, void (*free_value)(void *));
void *map_get(const struct map *m, const char *key);
/* Sets key to value (copying the key); returns the old value or NULL in
 * *ret_old. Returns 0 or -ENOMEM. */
int map_put(struct map *m, const char *key, void *value, void **ret_old)
	__attribute__((warn_unused_result));
/* The value of key; when there is none, a new one of `size` bytes,
 * zeroed (calloc), put under key (freed by the map's owner, as the
 * others). NULL when out of memory (nothing changed). */
void *map_get_or_make(struct map *m, const char *key, size_t size);
/* Removes key; returns its value or NULL. */
void *map_remove(struct map *m, const char *key);
/* Iteration: for (size_t i = 0; map_next(m, &i, &k, &v);) ...; removing
 * the current entry while iterating is allowed. */
int map_next(const struct map *m, size_t *iter, const char **ret_key, void **ret_value);

#endif
