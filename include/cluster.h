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
	int instances_alive; /* instances whose heartbeat is within their lease time */
	struct cluster_shard shard[CLUSTER_MAX_SHARDS];
};

struct cluster;

/* The shard of `site` among `nshards` (1..CLUSTER_MAX_SHARDS): XXH3-64 of
 * the site's bytes, modulo nshards. The same on every instance and every
 * build (XXH3 is a fixed algorithm). */
int cluster_shard_of(const char *site, int nshards);

/* The MQTT client id of shard `shard`: "<prefix><shard, 3 digits>", e.g.
 * "cordon-shard-007". Returns snprintf's count. */
int cluster_session_id(const char *prefix, int shard, char *buf, size_t len);

/* Starts the thread: connects to cfg->pg_conninfo (retrying with the
 * store's backoff), checks cluster_settings.shards against
 * cfg->cluster_shards (a different number is fatal: *ret_cluster is set,
 * and cluster_fatal() says why once the thread found it), writes the
 * heartbeat row named cfg->mqtt_client_id, and from then on renews,
 * takes and offers back shards. `wake_fd` (an eventfd) is written at each
 * change of the view. Copies what it keeps of `cfg`. Returns 0, -ENOMEM,
 * or another negative errno (thread creation). */
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
 * history 'released') at its next turn. */
void cluster_released(struct cluster *c, int shard);
/* The broker took the shard's session over (DISCONNECT 0x8E, or the
 * quiet drop of an older Mosquitto): another instance resumed it. The
 * shard is NOT_OWNED from now on, and taken again only through a
 * successful acquisition in PostgreSQL. */
void cluster_session_lost(struct cluster *c, int shard);
/* SIGTERM: every owned shard becomes RELEASING and no new one is taken;
 * once the main loop released them all (or at cluster_destroy) the
 * heartbeat row gets stopped_at. */
void cluster_stop_begin(struct cluster *c);
/* A fatal misconfiguration found by the thread (shards differ from the
 * database's), or NULL. */
const char *cluster_fatal(struct cluster *c);
/* Stops the thread; leases still held are left to expire (a crash looks
 * the same to the others). */
void cluster_destroy(struct cluster *c);

#endif
