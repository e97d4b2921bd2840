/* shards.h - the shards a clustered instance acts for, as the main loop
 * sees them (docs/scaling.md, "Rule state at a takeover").
 *
 * The cluster thread (cluster.h) says which shards this instance owns; a
 * shard owned is acted for only once its rule state is loaded from
 * PostgreSQL ("ready": its seed restored), and only while
 * cluster_may_act() says the lease is surely ours. This object holds the
 * main loop's copy of the view, each shard's readiness and the epoch its
 * seed was asked for, and answers, for a record or a timer, whether the
 * rules may act on a site now. Pure: no I/O, no clock reads (the caller
 * sets the time); one per daemon, main thread only. */
#ifndef CORDON_SHARDS_H
#define CORDON_SHARDS_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"

/* What the rules cursor does with a record of a site. */
enum shards_verdict {
	SHARDS_JUDGE,	   /* ours, its state loaded, the lease sure: the rules run */
	SHARDS_STORE_ONLY, /* another instance's (or nobody's): stored, not judged */
	/* Ours but its state is not loaded yet, or the lease is past its
	 * deadline while PostgreSQL answers (the renewal under way): wait
	 * for the view to change. */
	SHARDS_WAIT,
};

/* Why a shard is not judged, for the log and the metric. */
enum shards_why {
	SHARDS_WHY_NONE = 0,
	SHARDS_WHY_NOT_OWNED, /* SHARDS_STORE_ONLY */
	SHARDS_WHY_NO_VIEW,   /* SHARDS_WAIT: no view from the cluster thread yet */
	SHARDS_WHY_LOADING,   /* SHARDS_WAIT: its rule state not loaded yet */
	SHARDS_WHY_UNSURE,    /* SHARDS_WAIT: past the lease's deadline, PostgreSQL up */
	/* SHARDS_WAIT: the site's own shard's stream took it over from shard
	 * 0's (handover.h), which another instance serves and has not yet
	 * said is done: its rule state is there until then. */
	SHARDS_WHY_HANDOVER,
	/* SHARDS_STORE_ONLY: taken from a stream that no longer serves the
	 * site (a copy from shard 0's stream after the hand-over, in a crash's
	 * window: the site's own shard judges it). */
	SHARDS_WHY_OTHER_STREAM,
};

struct registry_snapshot;

struct shards {
	int nshards; /* [cluster] shards; 0: not clustered (every site judged) */
	/* [cluster] discovery: a site's home shard is 0 until its hand-over
	 * is done (shards_home_of()); `reg`, the register in use, says which
	 * are (not owned; the daemon sets it at each snapshot). */
	bool discovery;
	const struct registry_snapshot *reg;
	bool have_view;		  /* a view applied since PostgreSQL answered the cluster thread */
	struct cluster_view view; /* the last one applied */
	/* Per shard: its rule state restored for the epoch it is owned
	 * with; the epoch whose seed was asked for (0: none). */
	bool ready[CLUSTER_MAX_SHARDS];
	int64_t asked[CLUSTER_MAX_SHARDS];
	int64_t now_ms; /* CLOCK_MONOTONIC ms: the time verdicts are given for */
	/* Per shard: its session is connected (the daemon sets it at each
	 * step). Past a lease's deadline (PostgreSQL away) the timers act for
	 * a shard only while its session is up: a session the broker closed
	 * (taken over, quietly or with 0x8E, by an instance that got the
	 * lease while this one cannot reach PostgreSQL) fences them too. */
	bool session_up[CLUSTER_MAX_SHARDS];
};

/* What a new view changed: shards whose state is to be forgotten (lost,
 * or taken again under another epoch: what we held is stale), and shards
 * whose seed is to be asked for (owned, not ready, not asked for with
 * their epoch). */
struct shards_change {
	int nlost, nwanted;
	int lost[CLUSTER_MAX_SHARDS];
	int wanted[CLUSTER_MAX_SHARDS];
};

/* nshards: [cluster] shards (0 to CLUSTER_MAX_SHARDS; 0: not clustered). */
void shards_init(struct shards *s, int nshards);
/* [cluster] discovery; before the first view. */
void shards_set_discovery(struct shards *s, bool discovery);
/* The register in use (NULL: none yet): kept as a pointer until the next
 * call. */
void shards_set_register(struct shards *s, const struct registry_snapshot *reg);
/* The shard whose rule state a site's is, its home: cluster_shard_of();
 * with discovery, 0 unless the site is registered and its hand-over done
 * (reg_site.handover has HANDOVER_DISCOVERY_CUT), as the register thread
 * assigns seeds (registry_set_discovery()). -1 when not clustered. */
int shards_home_of(const struct shards *s, const char *site);
/* A hand-over of a site of shard `shard` is done, and this instance did
 * not judge it under shard 0 (another instance did): the shard's rule
 * state is to be loaded again, with what that instance wrote. Marks the
 * shard not ready and asked again under its epoch; returns whether it
 * was ready (the caller forgets its sites' state: rules_forget_sites()
 * with shards_holds, and asks for its seed with the epoch in
 * s->asked[shard]). False, nothing changed, when it is not owned. */
bool shards_reseed(struct shards *s, int shard);
/* Applies a copy of the cluster thread's view: a shard no longer OWNED
 * or RELEASING, or owned under another epoch, is not ready any more (in
 * ret->lost); an owned shard neither ready nor asked for under its epoch
 * is marked asked (in ret->wanted). */
void shards_apply_view(struct shards *s, const struct cluster_view *v, struct shards_change *ret);
/* The seed asked for shard `shard` under `epoch` was restored: ready,
 * when the shard is still owned under that epoch. Returns whether it
 * was (false: the seed is stale, drop it). */
bool shards_seed_restored(struct shards *s, int shard, int64_t epoch);
/* Whether a seed's rows of shard `shard` asked for under `epoch` are
 * still wanted (owned under that epoch; ready or not: a later pass of the
 * restore adds to a ready shard). */
bool shards_seed_wanted(const struct shards *s, int shard, int64_t epoch);
/* The time the verdicts and the scope are given for. */
void shards_set_now(struct shards *s, int64_t now_ms);
/* What the rules cursor does with a record of `site` (NUL-terminated;
 * NULL or "" for a record of no site: a damaged span, an unknown topic,
 * judged as before) that shard `source`'s session took (SPOOL_SOURCE;
 * -1: none said, the instance's own client or a record written before).
 * By the site's home shard (shards_home_of()); a record from another
 * shard's stream than the home's: from shard s != 0 for a registered
 * site still at home in shard 0 (its hand-over under way), judged under
 * shard s when this instance judges shard 0 too (one rule state), else
 * waited for (SHARDS_WHY_HANDOVER); any other, stored only
 * (SHARDS_WHY_OTHER_STREAM). *ret_shard: the shard it is judged or
 * waited for under (-1 for no site), *ret_why: why not judged. */
enum shards_verdict shards_verdict(const struct shards *s, const char *site, int source,
				   int *ret_shard, enum shards_why *ret_why);
/* The rules' scope (rules_set_scope; ctx: the struct shards): the site's
 * shard is ready and cluster_may_act() at now_ms; past the lease's
 * deadline also its session up (session_up). */
bool shards_in_scope(void *ctx, const char *site);
/* What rules_forget_sites keeps (ctx: the struct shards): the sites of
 * ready shards. */
bool shards_holds(void *ctx, const char *site);
/* The epoch an alert of `site` is written with (the fencing token,
 * store.h): the shard's epoch in the view, and its shard in *ret_shard;
 * 0 (not fenced) when not clustered. */
int64_t shards_epoch_of(const struct shards *s, const char *site, int *ret_shard);
/* "not owned", "no view yet", "loading", "lease unsure", ... */
const char *shards_why_text(enum shards_why why);

#endif
