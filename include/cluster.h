/* cluster.h - shards of sites owned through leases in PostgreSQL.
 *
 * With [cluster] shards = N > 0 the sites are split into N shards by a
 * hash of the site (cluster_shard_of()); several cordond instances on one
 * broker and one database share the shards, each shard owned by one
 * instance at a time through a lease in PostgreSQL (sql/0012_cluster.sql,
 * docs/scaling.md). A thread of its own, with its own PGconn, keeps this
 * instance's heartbeat (cluster_instances), renews the leases it holds
 * every lease_time/3, takes free or expired shards up to its fair share
 * (ceil(N / instances alive)), and offers shards beyond it back. Every
 * time in the database is PostgreSQL's clock; the instance's own view of a
 * lease is a monotonic deadline: the time it sent the renewal that
 * succeeded, plus lease_time, less 10 % (so that it stops acting before
 * PostgreSQL's clock lets anyone else take the shard).
 *
 * The main loop never waits for the thread: it takes a copy of the view
 * (cluster_view()) when the wake eventfd says it changed, and tells the
 * thread what it did (cluster_released(), cluster_session_lost()). */
#ifndef CORDON_CLUSTER_H
#define CORDON_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CLUSTER_MAX_SHARDS 256

/* What this instance may do with one shard. */
enum cluster_shard_state {
	CLUSTER_NOT_OWNED = 0, /* another instance's, or nobody's */
	/* Ours (epoch, deadline_ms): subscribe, run the rules, publish. */
	CLUSTER_OWNED,
	/* Ours, but the thread wants to give it back (beyond our fair
	 * share, or at SIGTERM): the main loop stops the shard's session,
	 * runs the rules over what the session delivered, then calls
	 * cluster_released(); the lease stays ours until then. */
	CLUSTER_RELEASING,
};

struct cluster_shard {
	enum cluster_shard_state state;
	int64_t epoch;	     /* the fencing token of our lease; 0 when not owned */
	int64_t deadline_ms; /* CLOCK_MONOTONIC ms until which the lease is surely ours */
	char owner[128];     /* the owner's instance name as last read, "" = free */
};

struct cluster_view {
	uint64_t generation; /* grows at each change the main loop should look at */
	int nshards;
	/* PostgreSQL answered the last renewal (or heartbeat). While it does
	 * not, a shard past its deadline whose MQTT session was not taken
	 * over stays ours (cluster_may_act()): nobody can take a lease while
	 * the database is away, and the broker fences a session that another
	 * instance resumes. */
	bool db_ok;
	/* Instances whose heartbeat is within their lease time and that are
	 * not stopping (sql/0012, cluster_instances). */
	int instances_alive;
	/* A turn past the join delay ran: the shards this instance takes at
	 * start (its own from a previous process, free ones) are in the view.
	 * Before it, owning nothing does not mean the shards are others'. */
	bool joined;
	struct cluster_shard shard[CLUSTER_MAX_SHARDS];
	/* Added for the metrics and STATUS; none changes what the main loop
	 * may do. fair_share: ceil or floor of nshards / instances_alive, as
	 * cluster_plan() last chose it (0 before the first plan). */
	int fair_share;
	/* After cluster_stop_begin(): every lease was released (or lost) and
	 * the heartbeat row has stopped_at; the process may exit. */
	bool stopped;
	/* Since start: leases acquired, released, lost (a renewal that did
	 * not return one, or cluster_session_lost()), and renewal turns that
	 * failed (PostgreSQL unreachable or refusing). */
	uint64_t acquired, released, lost, renew_failures;
	/* CLOCK_MONOTONIC ms of the last renewal PostgreSQL answered; 0 never. */
	int64_t renewed_ms;
};

struct cluster;

/* What cluster_plan() is told of one shard, as the thread read it. */
enum cluster_row_kind {
	CLUSTER_ROW_FREE = 0,  /* no owner (never held, or released) */
	CLUSTER_ROW_MINE,      /* held by this process, OWNED */
	CLUSTER_ROW_RELEASING, /* held by this process, offered back */
	CLUSTER_ROW_SELF,      /* this instance's name, held by no lease of this
				* process: a previous process of the same name */
	CLUSTER_ROW_OTHER,     /* another instance's */
};

struct cluster_row {
	enum cluster_row_kind kind;
	bool expired; /* expires_at < clock_timestamp() (FREE: irrelevant) */
};

struct cluster_plan_input {
	int nshards;			/* 1..CLUSTER_MAX_SHARDS */
	const struct cluster_row *rows; /* nshards of them */
	/* The shards each other instance alive owns (as shard_leases says);
	 * this instance is the one more: alive = nothers + 1. */
	const int *others;
	int nothers;
	bool stopping;	   /* cluster_stop_begin(): offer every shard, take none */
	bool take;	   /* may take shards this turn (past the join delay) */
	bool take_expired; /* may take other instances' expired leases */
	bool reclaim;	   /* may take SELF rows, expired or not */
	unsigned seed;	   /* where the search for shards to take starts */
	int offer_max;	   /* RELEASING shards at once, at most (>= 1) */
};

struct cluster_plan {
	/* The share this instance aims at: ceil(nshards / alive), or
	 * floor(nshards / alive) while another instance alive holds fewer
	 * than that floor (so that the over-share offer back and it gets
	 * its floor). */
	int target;
	int ntake, noffer;
	int take[CLUSTER_MAX_SHARDS];  /* shards to acquire, in this order */
	int offer[CLUSTER_MAX_SHARDS]; /* MINE shards to set RELEASING */
};

/* Decides one turn from the rows read (pure, no clock): stopping offers
 * every MINE shard; otherwise with owned = MINE + RELEASING, below the
 * target it takes (when `take`) SELF rows (when `reclaim`), then FREE
 * rows, then expired OTHER or SELF rows (when `take_expired`), each class
 * from shard `seed % nshards` on, up to the target; above it, it offers
 * the highest MINE shards, so that at most `offer_max` are RELEASING and
 * MINE + RELEASING - offered never goes below the target. Never both takes
 * and offers. */
void cluster_plan(const struct cluster_plan_input *in, struct cluster_plan *ret);

/* The shard of `site` among `nshards` (1..CLUSTER_MAX_SHARDS): XXH3-64 of
 * the site's bytes, modulo nshards. The same on every instance and every
 * build (XXH3 is a fixed algorithm). */
int cluster_shard_of(const char *site, int nshards);

/* The MQTT client id of shard `shard`: "<prefix><shard, 3 digits>", e.g.
 * "cordon-shard-007". Returns snprintf's count. */
int cluster_session_id(const char *prefix, int shard, char *buf, size_t len);

/* Starts the thread: connects to cfg->pg_conninfo (retrying after 0.5 s,
 * doubling to lease_time / 3; waiting for the schema when the migrations
 * are not applied yet), checks cluster_settings.shards against
 * cfg->cluster_shards (a different number is fatal: *ret_cluster is set,
 * and cluster_fatal() says why once the thread found it), writes the
 * heartbeat row named cfg->mqtt_client_id, and from then on renews,
 * takes and offers back shards. `wake_fd` (an eventfd) is written at each
 * change of the view. Copies what it keeps of `cfg`. Returns 0, -EINVAL
 * (cfg->cluster_shards not within 1..CLUSTER_MAX_SHARDS), -ENOMEM, or
 * another negative errno (eventfd, thread creation). */
int cluster_create(const struct config *cfg, int wake_fd, struct cluster **ret_cluster)
	__attribute__((warn_unused_result));
/* Copies the current view into *ret (under a short lock). */
void cluster_view(struct cluster *c, struct cluster_view *ret);
/* Whether this instance may act on `shard` at monotonic time now_ms:
 * OWNED or RELEASING and before its deadline, or past it while
 * !v->db_ok and the shard's session was not taken over. Pure. */
bool cluster_may_act(const struct cluster_view *v, int shard, int64_t now_ms);
/* The main loop is done with a RELEASING shard (its session stopped, its
 * records through the rules): the thread releases the lease (owner NULL,
 * history 'released') at its next turn. `epoch` is the lease the session
 * ran under: a late call about an older lease, the shard owned again since
 * under a newer one, is ignored (0: whatever the epoch). */
void cluster_released(struct cluster *c, int shard, int64_t epoch);
/* The broker took the shard's session over (DISCONNECT 0x8E, or the
 * quiet drop of an older Mosquitto): another instance resumed it. The
 * shard is NOT_OWNED from now on, and taken again only through a
 * successful acquisition in PostgreSQL. `epoch` is the lease the session
 * ran under: a late report about a session of an older lease, the shard
 * owned again since under a newer one, is ignored (0: whatever the
 * epoch). */
void cluster_session_lost(struct cluster *c, int shard, int64_t epoch);
/* SIGTERM: every owned shard becomes RELEASING and no new one is taken;
 * once the main loop released them all (or at cluster_destroy) the
 * heartbeat row gets stopped_at. */
void cluster_stop_begin(struct cluster *c);
/* A fatal misconfiguration found by the thread (shards differ from the
 * database's), or NULL. */
const char *cluster_fatal(struct cluster *c);
/* Stops the thread; leases still held are left to expire (a crash looks
 * the same to the others). After cluster_stop_begin() the heartbeat row
 * gets stopped_at first (one statement, 1 s at most). Waits for a
 * statement under way at most 1 s, for a connection being made up to
 * libpq's connect_timeout. Accepts NULL. */
void cluster_destroy(struct cluster *c);

#endif
