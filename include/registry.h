/* registry.h - the household register, cached in memory.
 *
 * A thread of its own (with its own PostgreSQL connection) loads the
 * register into an immutable snapshot, LISTENs on cordon_register and
 * loads a new snapshot on every NOTIFY. The main loop takes new snapshots
 * with registry_take() and owns the snapshot it uses.
 *
 * Households and cards (the bulk: ~5,000 cards a site) are kept packed,
 * one block per site: sorted arrays of 32-bit offsets into a string pool
 * of the block's own, about 40 bytes a card in all (docs/architecture.md).
 * Blocks are immutable and shared, reference-counted, between the
 * snapshots that have the site: a NOTIFY naming a site reloads that site's
 * block only. Lookups of households and cards return views (struct
 * reg_household, struct reg_card) whose strings point into the block and
 * stay valid as long as the snapshot they came from. */
#ifndef CORDON_REGISTRY_H
#define CORDON_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert_state.h"
#include "normalize.h"
#include "tz.h"

#define REG_ID (NORM_ID_MAX + 1)

struct reg_site {
	char site[REG_ID];
	struct tz *tz; /* NULL: none of its own, the default ([site] timezone) */
	/* Its hand-over from shard 0's stream (handover.h): HANDOVER_SENT,
	 * HANDOVER_DISCOVERY_CUT as table site_handovers holds them. */
	unsigned handover;
};

struct reg_gate {
	char site[REG_ID], gate[REG_ID];
	int sealed;
	int active;
	enum gate_format format;
	enum temp_unit unit;
};

struct reg_zone {
	char site[REG_ID], zone[REG_ID];
	int64_t interval_s; /* 0: none of its own, [rules] disinfection_interval */
};

/* A household as registry_household() returns it: strings of the
 * snapshot, NUL-terminated, as PostgreSQL holds them (UTF-8, not cut). */
struct reg_household {
	const char *site, *household;
	const char *building, *unit, *room;
	int size; /* 0 to 255 (the table allows 0 to 50) */
};

/* A card as registry_card() returns it; strings as in reg_household. */
struct reg_card {
	const char *site, *card, *household;
	int revoked;
	int extra;
};

struct reg_block; /* one site's households and cards (registry.c) */

struct reg_isolation {
	char site[REG_ID], household[REG_ID];
	char person[REG_ID]; /* "" = the whole household */
	int64_t starts_s, ends_s;
	int64_t check_interval_s; /* 0: none of its own, [rules] check_interval */
};

/* Rule state read from PostgreSQL (SPEC G3): open alerts and the last
 * time each thing was seen, as typed rows (alert_state.h). Once at start
 * (in the first snapshot), and for a clustered instance at each shard it
 * takes (registry_seed_shard(): shard_tags set). */
struct registry_seed {
	struct alert *alerts;
	size_t nalerts;
	int more; /* a site and kind has more open alerts than were loaded */
	struct alert_seen *seen;
	size_t nseen;
	/* A shard's seed: nshards entries, the tag each shard was asked for
	 * with, 0 for a shard it does not cover; NULL in the first
	 * snapshot's. */
	int64_t *shard_tags;
	int nshards;
	size_t nsites;		    /* the sites its rows were read for; 0: every site */
	struct registry_seed *next; /* the register thread's queue */
};

struct registry_snapshot {
	struct registry_seed *seed; /* only in the first snapshot */
	uint64_t generation;
	struct reg_site *sites;
	size_t nsites;
	struct reg_gate *gates;
	size_t ngates;
	struct reg_zone *zones;
	size_t nzones;
	struct reg_block **blocks; /* by site (strcmp order), sites with households or cards */
	size_t nblocks;
	size_t nhouseholds; /* in all blocks */
	size_t ncards;
	struct reg_isolation *isolations; /* active orders, by site and household */
	size_t nisolations;
	struct tz *default_tz; /* of sites without their own: [site] timezone */
	double load_seconds;   /* how long the register thread took to load it; 0: not loaded */
	size_t reloaded_sites; /* sites whose cards this load read: 0 = all of them */
};

struct registry;

/* Starts the register thread; `wake_fd` (an eventfd) is written when a
 * new snapshot, or a seed asked for, is ready. default_tz names the zone
 * of unregistered sites. The first snapshot carries the rule state
 * (seed): of the open alerts, the aggregates and the oldest `seed_rows` of
 * each site and kind (seed->more: a site and kind has more;
 * registry_reseed loads the next), of every site, or with `first_site`
 * not NULL of that site only (a clustered instance owns no shard at start:
 * "_daemon", its instance-level alerts). */
int registry_create(const char *conninfo, const char *default_tz, int wake_fd, int64_t seed_rows,
		    const char *first_site, struct registry **ret_registry)
	__attribute__((warn_unused_result));
void registry_destroy(struct registry *r);
/* Loads the open alerts again (the next `rows` of a site and kind, once
 * the ones folded are resolved in PostgreSQL), of the sites the first
 * seed was of: the next snapshot carries a seed. */
void registry_reseed(struct registry *r);
/* Asks for the rule state of the sites of shard `shard` of `nshards`
 * (1..CLUSTER_MAX_SHARDS; cluster_shard_of()), as at start, tagged `tag`
 * (> 0, the caller's: the lease's epoch). The register thread lists the
 * sites PostgreSQL knows (the register's, and those with open alerts,
 * open calls or open needs: a site nobody registered still has its fever
 * alerts), keeps the shard's, and reads their rows with
 * alert_state_alerts_sites_sql and alert_state_seen_sites_sql in one
 * REPEATABLE READ transaction. Shards asked for together (before the
 * thread gets to them) come in one seed; a shard asked for again before
 * its load began is loaded once, with the last tag. The seed comes
 * through registry_take_seed() (wake_fd written), not in a snapshot: it
 * needs no load of the register, and seeds of several shards must not
 * replace one another as snapshots do. A load that fails is tried again
 * (0.5 s doubling to 15 s). Never blocks: a lock and an eventfd write. */
void registry_seed_shard(struct registry *r, int nshards, int shard, int64_t tag);
/* With [cluster] discovery on (docs/scaling.md): a site's rule state is
 * of shard 0 until its hand-over is done (registered and
 * HANDOVER_DISCOVERY_CUT), then of cluster_shard_of(); the sites of a
 * shard's seed (registry_seed_shard) follow that rule. Off (the default
 * here): always cluster_shard_of(). Call before the first seed is asked
 * for. */
void registry_set_discovery(struct registry *r, bool discovery);
/* Records a step of a site's hand-over in table site_handovers:
 * HANDOVER_SENT (sent_at and `shard`, before any marker of the site is
 * published) or HANDOVER_DISCOVERY_CUT (discovery_cut_at). A step
 * recorded stays (the first time is kept). The register thread writes
 * the steps queued in one transaction, with pg_notify('cordon_register',
 * site) for each, so every instance's next snapshot has them; a write
 * that fails is tried again (0.5 s doubling to 15 s); a site no longer
 * registered is skipped. Never blocks (a lock, an eventfd write).
 * Returns 0 or -ENOMEM (nothing queued). */
int registry_note_handover(struct registry *r, const char *site, int shard, unsigned step)
	__attribute__((warn_unused_result));
/* Steps queued and not yet written (for the tests and the stats line). */
size_t registry_handovers_pending(struct registry *r);
/* The oldest seed loaded for registry_seed_shard() not taken yet, or NULL;
 * the caller frees it (registry_seed_free). */
struct registry_seed *registry_take_seed(struct registry *r);
void registry_seed_free(struct registry_seed *seed);
/* The newest snapshot not taken yet, or NULL; the caller frees it. */
struct registry_snapshot *registry_take(struct registry *r);
void registry_snapshot_free(struct registry_snapshot *snap);
/* An empty snapshot (nothing registered), for the start; NULL when out of
 * memory or `default_tz` is not a zone. */
struct registry_snapshot *registry_snapshot_empty(const char *default_tz);
/* The zone of sites without one of their own, for the snapshots loaded
 * from now on (SIGHUP). Returns 0, or -ENOMEM (nothing changed). */
int registry_set_default_tz(struct registry *r, const char *default_tz)
	__attribute__((warn_unused_result));
/* The same for a snapshot already loaded (the one the main loop uses).
 * Returns 0, or -ENOENT / -EINVAL for an unknown zone, -ENOMEM; on error
 * the snapshot keeps its zone. */
int registry_snapshot_set_default_tz(struct registry_snapshot *s, const char *default_tz)
	__attribute__((warn_unused_result));

/* Adds a household, or a card, to a snapshot that is not shared yet (one
 * of registry_snapshot_empty(): tests and tools build registers this way;
 * the register thread appends rows in bulk and sorts each block once).
 * Strings are copied (any length, any bytes but NUL), building, unit and
 * room interned within the site's block; a card names its household by
 * id, registered or not; `size` is clamped to 0..255. Such blocks keep
 * their building form (room to grow, the intern table): an add in id
 * order costs O(1) amortized, one out of order also moves the site's
 * entries after it. Returns 0, -EEXIST
 * (that site already has that household or card; nothing changed),
 * -E2BIG (the site's strings passed 1 GiB) or -ENOMEM. */
/* Adds a registered site (strcmp order kept) with its hand-over flags
 * (reg_site.handover), no zone of its own, to a snapshot that is not
 * shared yet (tests). Returns 0, -EEXIST, -EINVAL (empty, or not under
 * REG_ID bytes) or -ENOMEM. */
int registry_snapshot_add_site(struct registry_snapshot *s, const char *site, unsigned handover)
	__attribute__((warn_unused_result));
int registry_snapshot_add_household(struct registry_snapshot *s, const char *site,
				    const char *household, const char *building, const char *unit,
				    const char *room, int size) __attribute__((warn_unused_result));
int registry_snapshot_add_card(struct registry_snapshot *s, const char *site, const char *card,
			       const char *household, int revoked, int extra)
	__attribute__((warn_unused_result));
/* Bytes of memory the snapshot holds (its blocks, arrays and pools;
 * blocks shared with another snapshot are counted in each). */
size_t registry_snapshot_bytes(const struct registry_snapshot *s);

/* Lookups; NULL when not registered. */
const struct reg_site *registry_site(const struct registry_snapshot *s, const char *site);
const struct reg_gate *registry_gate(const struct registry_snapshot *s, const char *site,
				     const char *gate);
const struct reg_zone *registry_zone(const struct registry_snapshot *s, const char *site,
				     const char *zone);
/* Households and cards: fill *ret (a view into the snapshot) and return
 * ret, or NULL (then *ret is untouched). O(log n): a binary search for the
 * site's block, then one in the block. */
const struct reg_household *registry_household(const struct registry_snapshot *s, const char *site,
					       const char *household, struct reg_household *ret);
const struct reg_card *registry_card(const struct registry_snapshot *s, const char *site,
				     const char *card, struct reg_card *ret);
/* The households that hold at least `min` (>= 1) active ordinary cards
 * (neither revoked nor extra), site by site in strcmp order (households
 * in no set order): fn(arg, site, household, cards, n) with the n card ids
 * sorted (strcmp); the strings are the snapshot's, the array fn's only for
 * the call. Before each site with households or cards,
 * walk_site(arg, site, serial) (NULL: walk all) says whether to walk it:
 * `serial` (never 0) is the same as long as the site's households and
 * cards are, in this snapshot and the later ones that share them (a reload
 * that did not read the site). O(c log c) for the c cards of each site
 * walked. Returns 0, fn's first negative return (the walk stops), or
 * -ENOMEM. */
int registry_ordinary_cards(const struct registry_snapshot *s, size_t min,
			    bool (*walk_site)(void *arg, const char *site, uint64_t serial),
			    int (*fn)(void *arg, const char *site, const char *household,
				      const char *const *cards, size_t n),
			    void *arg) __attribute__((warn_unused_result));
/* Whether a site has any card registered (revoked ones count). */
bool registry_site_has_cards(const struct registry_snapshot *s, const char *site);
/* The zone of a site: its own, else the default (never NULL). */
const struct tz *registry_site_tz(const struct registry_snapshot *s, const char *site);
/* Active isolation orders of a household: *ret_n entries from the
 * returned pointer (NULL, 0 when none). */
const struct reg_isolation *registry_isolations(const struct registry_snapshot *s, const char *site,
						const char *household, size_t *ret_n);

#endif
