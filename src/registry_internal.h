/* registry_internal.h - the blocks of registry.c (households and cards of
 * one site), shared with the loader (registry_load.c). Not a public API. */
#ifndef CORDON_REGISTRY_INTERNAL_H
#define CORDON_REGISTRY_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

/* A block's pool: offsets of 30 bits (the card's two flags take the rest). */
#define POOL_MAX (UINT32_C(1) << 30)
#define CARD_REVOKED (UINT32_C(1) << 31)
#define CARD_EXTRA (UINT32_C(1) << 30)
#define CARD_HH (POOL_MAX - 1)

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
	/* Unique to this block's content: given at creation, again at each
	 * add to an unsealed block (registry_ordinary_cards' callers skip a
	 * site whose serial they judged). */
	uint64_t serial;
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

void block_unref(struct reg_block *b);
struct reg_block *block_ref(struct reg_block *b);
const char *block_site(const struct reg_block *b);
void block_seal(struct reg_block *b);
int block_grow(void **arr, uint32_t *cap, uint32_t n, size_t size);
int block_pool_add(struct reg_block *b, const char *str, uint32_t *ret_off);
int block_intern(struct reg_block *b, const char *str, uint32_t *ret_off);
uint32_t block_hh_pos(const struct reg_block *b, const char *id, int *ret_found);
struct reg_block *registry_snapshot_block(struct registry_snapshot *s, const char *site);
int registry_cmp_pair(const void *a, const void *b);

#endif
