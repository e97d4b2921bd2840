/* mqtt_client.h - the MQTT client: Paho MQTTAsync, MQTT v5, persistent session.
 *
 * Paho's receive callback appends each message to the spool and returns;
 * everything else happens in the main loop. Owns the MQTTAsync handle. */
#ifndef CORDON_MQTT_CLIENT_H
#define CORDON_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handover.h"
#include "mqtt_subs.h"
#include "mqtt_watch.h"
#include "spool.h"

struct mqtt_client;

/* Unacknowledged messages the broker may send us (MQTT v5 Receive
 * Maximum): what can still arrive after we decide to pause. */
#define MQTT_CLIENT_RECEIVE_MAXIMUM 1000

/* A filter's SUBACK outcome while none has come on this connection. */
#define MQTT_CLIENT_SUB_PENDING MQTT_SUBS_PENDING
/* A takeover as Mosquitto before 2.0.15 shows it: the connection closed
 * without a DISCONNECT and back within this many ms (a broker restart
 * looks the same; see docs/operations.md). */
#define MQTT_CLIENT_QUIET_DROP_MS 30000

struct mqtt_client_stats {
	uint64_t received;	       /* messages appended to the spool */
	uint64_t spool_waits;	       /* times the callback had to wait for the spool */
	uint64_t published;	       /* outbound messages handed to Paho */
	uint64_t publish_failed;       /* refused by Paho */
	uint64_t publish_dropped;      /* refused by our queue: full, or out of memory */
	uint64_t out_queued;	       /* publishes waiting for the publish thread */
	uint64_t persist_write_failed; /* outbound entries not written to disk */
	uint64_t persist_set_aside;    /* damaged outbound entries set aside at start */
	uint64_t persist_read_failed;  /* outbound entries lost from disk */
	uint64_t connects;	       /* connections the broker accepted */
	uint64_t outbound_shortened;   /* sent shortened to fit the broker's maximum packet size */
	uint64_t outbound_too_large;   /* set aside: over it even shortened */
	uint32_t broker_max_packet;    /* bytes, from the last CONNACK; 0: none stated */
	int connected;
	int spool_failing; /* the callback cannot append right now */
	/* This connection's SUBACK, over the inbound filters: granted at the
	 * QoS asked (1), granted lower, refused, no answer yet. */
	int subs_granted, subs_downgraded, subs_refused, subs_pending;
	/* The first refused filter and why, e.g. "cordon/+/ack (not
	 * authorized)", plus " and N more"; "" when none is refused. */
	char sub_refused[320];
	/* DISCONNECTs from the broker (MQTT 5) by mqtt_reason_index() of
	 * their reason code; the last slot counts codes MQTT 5 does not define. */
	uint64_t disconnects[MQTT_REASONS + 1];
	uint64_t taken_over; /* DISCONNECTs with 0x8E, session taken over */
	uint64_t quiet_drops; /* closed without a DISCONNECT, back within MQTT_CLIENT_QUIET_DROP_MS */
	/* Replays dropped (replay.h): retained messages sent again at a
	 * SUBSCRIBE, redeliveries (DUP) of what the spool has. */
	uint64_t replayed_retained, replayed_dup;
	uint64_t gated;		     /* acknowledged, not spooled: the hand-over gate said so */
	uint64_t replay_note_failed; /* deliveries not remembered (out of memory) */
	uint64_t replay_topics, replay_evicted;
};

/* Makes `payload` (`len` bytes) fit in `max` bytes: returns a malloc'ed
 * shorter form of *ret_len bytes, or NULL when it cannot. Called from
 * the publish thread and from Paho's send thread (see alerts_shorten). */
typedef char *mqtt_client_shorten_fn(const void *payload, size_t len, size_t max, size_t *ret_len);

/* What a client receives. */
enum mqtt_client_inbound {
	/* Every site: the inbound filters of topics.c with `+` for the site
	 * (one instance alone, [cluster] shards = 0). */
	MQTT_CLIENT_INBOUND_WILDCARD,
	/* Nothing: the instance's own client when clustered (it publishes). */
	MQTT_CLIENT_INBOUND_NONE,
	/* The sites of mqtt_client_set_sites(), each with every inbound
	 * filter (a shard session, docs/scaling.md). */
	MQTT_CLIENT_INBOUND_SITES,
};

/* How a client is made (mqtt_client_create_with()). Zeroed, it is the
 * instance's own client of one instance alone ([cluster] shards = 0). */
struct mqtt_client_options {
	/* The client id; NULL: cfg->mqtt_client_id. */
	const char *client_id;
	/* The subdirectory of the spool directory for the client's files
	 * (Paho's outbound queue mqtt-out/, the packet identifier table, the
	 * replay memory), one level, e.g. "shard-007" (made if missing); NULL
	 * or "": the spool directory itself. */
	const char *dir;
	enum mqtt_client_inbound inbound;
	/* Not the instance's own client: no retained state topic, no will,
	 * no offline state at the stop; Paho's client is made, and the
	 * replay memory restored, by the publish thread at the start (a
	 * client created while the main loop runs never waits on Paho's
	 * lock); and a takeover of its session (DISCONNECT 0x8E) ends it: it
	 * never reconnects after one (mqtt_client_is_taken_over()). */
	bool session;
	/* With `session`: the lease epoch the session is taken under. The
	 * packet identifier table and the replay memory of its directory are
	 * kept only when the directory's last session ran under this epoch
	 * or the one before (no other instance held the shard in between);
	 * otherwise they describe another owner's time and start empty. The
	 * epoch is written in the directory (file "epoch") before the first
	 * connect. */
	int64_t epoch;
	/* With `session`: which spool records are this client's (their
	 * retained payloads rebuild its replay memory); NULL: all. Called on
	 * the publish thread. */
	bool (*mine)(void *arg, const char *topic, size_t len);
	void *mine_arg;
	/* Topics its replay memory keeps at most; 0: REPLAY_MAX_TOPICS. */
	uint32_t replay_topics;
	/* Each site's (or the wildcard's) filters include the hand-over
	 * marker's, <root>/<site>/_handover (mqtt_subs_create()). */
	bool handover_filters;
	/* Not NULL: asked for every message (but DUP and retained messages
	 * the spool has already) on Paho's thread; HANDOVER_DROP acknowledges
	 * it without spooling it (counted in `gated`). Not owned: it must
	 * outlive the client. */
	struct handover *gate;
	/* Extra record flags of every message appended (SPOOL_SOURCE()). */
	unsigned record_flags;
};

/* Creates the client (nothing is sent yet). `wake_fd` is an eventfd that
 * is written after an append when the loop has asked for it with
 * mqtt_client_want_wake() since the last write. Copies what it keeps of `cfg`
 * (user name, password, TLS file names, ids) and of `opts`: both may be
 * freed after (a SIGHUP frees the config). Returns 0, -ENOMEM, -EINVAL
 * (the URI, the client id, the directory), -EACCES (the password file)
 * or another negative errno. */
int mqtt_client_create_with(const struct config *cfg, struct spool *spool, int wake_fd,
			    const struct mqtt_client_options *opts, struct mqtt_client **ret_client)
	__attribute__((warn_unused_result));
/* MQTT_CLIENT_INBOUND_SITES: replaces the set of sites subscribed to
 * (names as the register holds them; any order; a name that cannot be a
 * topic level ("+" too), and beyond MQTT_SUBS_MAX_SITES, left out and counted in
 * *ret_skipped, NULL: not wanted). What is new is subscribed and what
 * left unsubscribed through the publish thread (in SUBSCRIBEs of at most
 * MQTT_SUBS_REQUEST_FILTERS filters), on a live link; every connect
 * subscribes to the whole set. Never waits on Paho. Returns 0, -ENOMEM
 * (nothing changed), or -EINVAL (another kind of client). */
int mqtt_client_set_sites(struct mqtt_client *in, const char *const *sites, size_t n,
			  size_t *ret_skipped) __attribute__((warn_unused_result));
/* MQTT_CLIENT_INBOUND_SITES: whether `site` is subscribed on this
 * connection with every filter granted (mqtt_subs_site_granted()). */
bool mqtt_client_site_granted(struct mqtt_client *in, const char *site);
/* MQTT_CLIENT_INBOUND_NONE (the instance's own client, clustered): from now
 * on every message that still comes (subscriptions an older run's session
 * holds: before issue 19 this client subscribed to every site) is
 * acknowledged without being spooled (counted in `gated`), and the
 * wildcard filter it came by is unsubscribed (once a connection; only
 * filters seen to be held: see unsubscribe_held()).
 * Until then what comes is spooled (a backlog queued for that session
 * while cordond was down). Another kind of client: nothing. */
void mqtt_client_drop_inbound(struct mqtt_client *in);
/* Sites in the set (MQTT_CLIENT_INBOUND_SITES; 0 otherwise). */
size_t mqtt_client_sites(struct mqtt_client *in);
/* Before mqtt_client_start(): fills the replay memory from the file the last
 * mqtt_client_save_replays() wrote in the spool directory and from the spool
 * records appended after it (all of them, without a usable file), and
 * sets *ret_pos to the spool position the file covers: the spool must
 * keep the records from there on until mqtt_client_save_replays() succeeds.
 * Returns 0, or a negative errno when the spool cannot be read. */
int mqtt_client_restore_replays(struct mqtt_client *in, uint64_t *ret_pos)
	__attribute__((warn_unused_result));
/* Writes the replay memory to the spool directory (synced) when it has
 * changed since the last save, and sets *ret_pos to the spool position
 * it covers: the spool should keep the records from there on (released
 * only before it), for mqtt_client_restore_replays() after a crash. Waits for
 * the receive thread only while it looks up or notes one message (a
 * copy is taken, ~10 ms at REPLAY_MAX_TOPICS; the file is written
 * after). Thread-safe (one save at a time). Returns 0 or a negative errno
 * (-ENOSPC ...: nothing written). */
int mqtt_client_save_replays(struct mqtt_client *in, uint64_t *ret_pos)
	__attribute__((warn_unused_result));
/* Writes the packet identifier table (pktid.h) back to its file, after
 * the spool's own sync. 0 or a negative errno. */
int mqtt_client_sync_replays(struct mqtt_client *in) __attribute__((warn_unused_result));
/* Starts connecting; failures are retried from mqtt_client_tick(). The
 * instance's client connects from the calling thread (setup, before the
 * loop); a session's start is queued for the publish thread (restore of
 * its replay memory, Paho's client, the connect) and never waits. */
int mqtt_client_start(struct mqtt_client *in) __attribute__((warn_unused_result));
/* Called from the loop about every 100 ms: brings the connection to the
 * one wanted (connected unless paused; mqtt_link.h), a connect after a
 * loss or a failure with backoff, and logs connection state changes, each refused (or
 * downgraded) subscription, and each DISCONNECT of the broker with its
 * reason in words. */
void mqtt_client_tick(struct mqtt_client *in, int64_t now_ms);
/* Queues an outbound message (QoS 0 or 1) for the publish thread, which
 * hands it to Paho; Paho keeps it while the broker is away. Never waits
 * on Paho. Returns 0, or -ENOBUFS when 100,000 messages or 64 MiB are
 * already queued (counted in publish_dropped), or -ENOMEM. */
int mqtt_client_publish(struct mqtt_client *in, const char *topic, const void *payload, size_t len,
			int qos, int retained) __attribute__((warn_unused_result));
/* Stops taking messages: disconnects (from the publish thread, after what
 * is queued before), and the broker keeps what comes meanwhile in our
 * persistent session. mqtt_client_resume() connects again, once what is
 * under way (a connect, the pause's disconnect) is done, whatever the
 * order. Both set the connection wanted and look at once; the tick goes
 * on from there. Neither waits. */
void mqtt_client_pause(struct mqtt_client *in);
void mqtt_client_resume(struct mqtt_client *in);

/* What the owner of a session allows besides the pause (the lease,
 * docs/scaling.md "Fencing"). */
enum mqtt_client_hold {
	MQTT_CLIENT_GO,		/* connect as wanted */
	MQTT_CLIENT_NO_CONNECT, /* keep a live link, but connect no more */
	MQTT_CLIENT_DOWN,	/* disconnect (as the pause does) and stay down */
};
/* Sets the hold; looks at once, never waits. */
void mqtt_client_hold(struct mqtt_client *in, enum mqtt_client_hold hold);
/* A session whose broker said DISCONNECT 0x8E (session taken over):
 * another client resumed it, and this one never connects again. */
bool mqtt_client_is_taken_over(struct mqtt_client *in);

/* Hands everything queued to Paho, then publishes our retained "offline"
 * state and disconnects (within timeout_ms); no message is received
 * after this returns. Publishes queued later go to Paho's persistence,
 * for the next start. */
void mqtt_client_stop(struct mqtt_client *in, int timeout_ms);
/* The same stop, queued without waiting for it (the main loop: the stop
 * calls into Paho, and Paho's lock may be held by a receive callback that
 * waits for spool space only the loop frees); mqtt_client_is_stopped()
 * tells when every stop begun is done. */
void mqtt_client_stop_begin(struct mqtt_client *in, int timeout_ms);
bool mqtt_client_is_stopped(struct mqtt_client *in);
/* Queues the end of the client for the publish thread: the stop as
 * above (a session's DISCONNECT is a normal one, reason 0x00: the broker
 * keeps the session, and queues for the next owner what comes
 * meanwhile), a last save of the replay memory, and Paho's client
 * destroyed; nothing is received after. mqtt_client_is_closed() tells
 * when it is done; mqtt_client_destroy() then never waits on Paho.
 * Never waits. */
void mqtt_client_close_begin(struct mqtt_client *in, int timeout_ms);
bool mqtt_client_is_closed(struct mqtt_client *in);
/* Frees the client. One not closed is stopped here first, waiting on
 * Paho's lock: only before the main loop runs or after it ends. */
void mqtt_client_destroy(struct mqtt_client *in);
/* The loop is about to sleep: the next append writes wake_fd once. The
 * loop must look at the spool again after this call (an append may have
 * come just before it). */
void mqtt_client_want_wake(struct mqtt_client *in);
/* Sets how an outbound message over the broker's maximum packet size is
 * shortened (none by default: such a message is set aside). */
void mqtt_client_set_shorten(struct mqtt_client *in, mqtt_client_shorten_fn *fn);
void mqtt_client_get_stats(struct mqtt_client *in, struct mqtt_client_stats *ret_stats);
/* The inbound filter number i (0 <= i < mqtt_client_filter_count()),
 * written into buf, and in *ret_code its SUBACK on this connection:
 * MQTT_CLIENT_SUB_PENDING, the granted QoS 0-2, or the refusal's reason
 * code (0x80 and up, see mqtt_reason_text()). Returns its length, or -1
 * (out of range, or it does not fit). */
int mqtt_client_filter_count(struct mqtt_client *in);
int mqtt_client_filter(struct mqtt_client *in, int i, char *buf, size_t len, int *ret_code);
/* The spool position the replay memory's file covers (the spool keeps
 * the records from there on for it), or UINT64_MAX while its saves fail
 * (a full disk must not keep the spool from freeing what PostgreSQL
 * has). Set by mqtt_client_restore_replays() and each save that
 * succeeds; a session's is the spool's end at its creation until then. */
uint64_t mqtt_client_covered(struct mqtt_client *in);

#endif
