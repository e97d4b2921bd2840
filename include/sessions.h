/* sessions.h - the MQTT clients of this instance: its own client and, with
 * [cluster] shards > 0, one session per shard it owns (docs/scaling.md).
 *
 * The instance's own client publishes the alerts, the instance's retained
 * state and its will; alone ([cluster] shards = 0) it also subscribes to
 * every site with the wildcard filters, as cordond always did, and this
 * module only passes the main loop's calls on to it. Clustered, it
 * subscribes to nothing, and each shard this instance owns has a session
 * of its own: client id cluster_session_id(session_prefix, shard), clean
 * start off, its files in <spool dir>/shard-NNN/, subscribed to the
 * inbound filters of the shard's sites (the register's sites whose
 * cluster_shard_of() is the shard). Every client appends to the one spool.
 *
 * What it follows (sessions_apply(), each wake of the cluster thread and
 * each tick): the cluster view, and a per-shard `ready` flag from the
 * daemon (the shard's rule state is loaded; looked at only to start a
 * session: it is never taken back while the lease holds). An OWNED and
 * ready shard gets
 * its session, started under the lease's epoch; it connects while the
 * lease is surely ours, keeps a live link but does not reconnect past the
 * lease's deadline while PostgreSQL is away, and disconnects past it when
 * PostgreSQL answers (cluster_may_act()). A RELEASING shard's session is
 * disconnected (a normal DISCONNECT: the broker keeps the session and
 * queues for the next owner) and ended, then reported with the spool's end
 * at that time (SESSIONS_STOPPED): the daemon calls cluster_released()
 * once the pipeline has passed that position. A NOT_OWNED shard's session
 * is ended at once. A session the broker took over (DISCONNECT 0x8E:
 * another instance resumed it) never reconnects and is reported
 * (SESSIONS_LOST): the daemon calls cluster_session_lost().
 *
 * Threads: the main loop calls everything but sessions_save_replays() and
 * sessions_sync_replays(), which the spool sync thread calls (syncer.c).
 * Nothing here waits on Paho: sessions are created, started, ended and
 * freed through their publish threads (mqtt_client.h). */
#ifndef CORDON_SESSIONS_H
#define CORDON_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "handover.h"
#include "mqtt_client.h"
#include "spool.h"

struct registry;
struct registry_snapshot;

/* A session's DISCONNECT at its end is given this long (ms). */
#define SESSIONS_CLOSE_MS 2000
/* An owned shard whose session is wanted up and has not been connected
 * for this long makes /healthz unhealthy (ms): longer than a connect's
 * timeout, so a hand-over (a session ended here, started elsewhere) is
 * not one. */
#define SESSIONS_DOWN_MS 15000

/* Something the daemon must tell the cluster thread. */
enum sessions_report_kind {
	/* A RELEASING shard's session is ended: cluster_released() once the
	 * pipeline has passed end_pos (its records through the rules, and
	 * their alerts in PostgreSQL for the next owner's rule state). */
	SESSIONS_STOPPED,
	/* The broker took the shard's session over: cluster_session_lost(). */
	SESSIONS_LOST,
};

struct sessions_report {
	enum sessions_report_kind kind;
	int shard;
	uint64_t end_pos; /* SESSIONS_STOPPED: the spool's end when it ended */
	int64_t epoch;	  /* the lease epoch the session ran under */
};

struct sessions_stats {
	/* The instance's own client; received, spool_waits, spool_failing,
	 * the replay counters and the SUBACK counts summed over every client
	 * (those of sessions while connected only). */
	struct mqtt_client_stats mqtt;
	bool clustered; /* [cluster] shards > 0: the rest is about shards */
	int shards;
	int owned;	     /* OWNED or RELEASING in the last view */
	int releasing;	     /* RELEASING */
	int sessions;	     /* sessions that exist (connected or not, ending or not) */
	int connected;	     /* sessions connected */
	uint64_t sites;	     /* sites in the live sessions' sets */
	uint64_t taken_over; /* sessions taken over by the broker since start */
	uint64_t released;   /* shards reported stopped since start */
	/* [cluster] discovery (handover.h), since start: markers published,
	 * messages the gates acknowledged without spooling (another stream
	 * serves their site; markers), shard 0's cuts. */
	uint64_t markers, gated, cuts;
	size_t holding; /* sites the live gates hold until their marker */
	/* Owned shards whose session has been wanted up and not connected for
	 * over SESSIONS_DOWN_MS, and the first of them in words ("shard 7's
	 * session not connected for 20 s"; "" when none). */
	int down;
	char down_why[96];
};

struct sessions_shard_stats {
	enum cluster_shard_state state; /* in the last view */
	int64_t epoch;			/* of our lease; 0 when not owned */
	bool session;			/* a session exists (maybe ending) */
	bool connected;
	size_t sites;	   /* in its set */
	uint64_t received; /* messages appended from the shard's sessions since start */
	uint64_t connects; /* connections of the shard's sessions since start */
};

struct sessions;

/* Starts with `instance` (the instance's own client, not owned: the
 * daemon creates and destroys it) and no session. `cfg` is copied as
 * needed (shards, session prefix, topic root) and passed to each session
 * created (mqtt_client_create_with() copies what it keeps). Returns 0 or
 * -ENOMEM. */
int sessions_create(const struct config *cfg, struct spool *spool, int wake_fd,
		    struct mqtt_client *instance, struct sessions **ret_sessions)
	__attribute__((warn_unused_result));
/* After the main loop: ends every session (waiting for each, at most
 * SESSIONS_CLOSE_MS and a little) and frees them. Call after
 * syncer_stop(). Accepts NULL. */
void sessions_destroy(struct sessions *ss);
/* The current configuration (SIGHUP): passed to sessions created from
 * now on. */
void sessions_reconfigure(struct sessions *ss, const struct config *cfg);
struct mqtt_client *sessions_instance(struct sessions *ss);

/* A new register snapshot: each live session's sites become its shard's
 * sites of `reg` (SUBSCRIBE what is new, UNSUBSCRIBE what left). The
 * names are copied; `reg` may be freed after. */
void sessions_set_register(struct sessions *ss, const struct registry_snapshot *reg);
/* Follows the cluster view `v` (copied) with `ready` (v->nshards flags:
 * the shard's rule state is loaded), at monotonic time now_ms: starts,
 * holds back, ends and reports sessions as described above. */
void sessions_apply(struct sessions *ss, const struct cluster_view *v, const bool *ready,
		    int64_t now_ms);
/* Each tick: every client's tick (mqtt_client_tick()), sessions ended
 * and freed, the leases' deadlines looked at again. */
void sessions_tick(struct sessions *ss, int64_t now_ms);
/* The next report, oldest first; false when none. Each once. */
bool sessions_next_report(struct sessions *ss, struct sessions_report *ret_report);
/* [cluster] discovery (handover.h): shard 0's session subscribes to every
 * site with the wildcard filters, the others to their registered sites;
 * every session has a gate, given the register's sites and their
 * hand-over flags at each sessions_set_register(). The steps of the
 * hand-overs are recorded through `registry` (registry_note_handover():
 * HANDOVER_SENT for sites new to a shard, before their markers), set
 * before the first sessions_set_register(). Each tick publishes the
 * markers due (a shard's session connected with every SUBACK in). */
void sessions_set_registry(struct sessions *ss, struct registry *registry);
/* The next cut of shard 0's gate, oldest first; false when none. The
 * daemon records HANDOVER_DISCOVERY_CUT once the store has committed up
 * to cut->end. */
bool sessions_next_cut(struct sessions *ss, struct handover_cut *ret_cut);
/* Shard sessions that exist (live or ending). */
int sessions_count(struct sessions *ss);

/* Intake (intake.c): pauses and resumes every client that receives (the
 * instance's own client only when it does: shards = 0), and the sessions
 * started meanwhile. */
void sessions_pause(struct sessions *ss);
void sessions_resume(struct sessions *ss);
/* mqtt_client_want_wake() on every client. */
void sessions_want_wake(struct sessions *ss);
void sessions_get_stats(struct sessions *ss, int64_t now_ms, struct sessions_stats *ret_stats);
/* One shard's (0 <= shard < shards); zeroed when out of range. */
void sessions_shard_stats(struct sessions *ss, int shard, struct sessions_shard_stats *ret_stats);

/* The spool sync thread: saves every client's replay memory
 * (mqtt_client_save_replays()) and msyncs every packet identifier table
 * (mqtt_client_sync_replays()). Each returns 0 or the first error; every
 * client is tried. */
int sessions_save_replays(struct sessions *ss) __attribute__((warn_unused_result));
int sessions_sync_replays(struct sessions *ss) __attribute__((warn_unused_result));
/* The spool release bound: the lowest mqtt_client_covered() over every
 * client (UINT64_MAX for one whose saves fail). Main thread. */
uint64_t sessions_covered(struct sessions *ss);

/* SIGTERM, once the shards are released (or the shutdown deadline came):
 * the instance's client stops (mqtt_client_stop_begin()) and every
 * session left ends. Never waits; sessions_is_stopped() tells when all is
 * done. */
void sessions_stop_begin(struct sessions *ss, int timeout_ms);
bool sessions_is_stopped(struct sessions *ss);

#endif
