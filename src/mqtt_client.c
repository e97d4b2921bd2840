/* mqtt_client.c - the MQTT client: Paho MQTTAsync, MQTT v5, persistent session.
 *
 * Threads: Paho's receive thread runs on_message(); the main loop calls
 * mqtt_client_publish(), mqtt_client_pause() and the rest, which only queue a
 * command; a thread of our own (out_main) makes every call into Paho for
 * them. Paho runs on_message() holding its process-wide lock, and
 * on_message() may wait there for spool space that only the main loop
 * frees (by committing batches): a main loop that called into Paho at
 * that moment would wait for Paho's lock, and the two would wait on each
 * other for good. With the queue the main loop never waits on Paho.
 *
 * Delivery: in libpaho 1.3.12, for an inbound QoS 1 PUBLISH the receive
 * thread calls our messageArrived callback directly (when Paho's own
 * message queue is empty) and sends the PUBACK only after the callback
 * returns. A callback that returns 0 would make Paho queue the message in
 * memory and acknowledge it anyway, so we never return 0: on a spool error
 * we wait and retry inside the callback, holding back the PUBACK (see
 * docs/architecture.md). */
#include "mqtt_client.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "clocks.h"
#include "handover.h"
#include "log.h"
#include "mqtt_broker.h"
#include "mqtt_limits.h"
#include "mqtt_link.h"
#include "mqtt_persist.h"
#include "mqtt_subs.h"
#include "pktid.h"
#include "replay.h"
#include "topics.h"

/* The outbound queue between the main loop and out_main: commands in
 * order, publishes bounded in count and bytes (memory is bounded; a
 * publish over the bound is refused, counted and logged). */
#define OUT_MAX_MESSAGES 100000
#define OUT_MAX_BYTES (64u << 20)

/* The replay memory's file in the client's directory. */
#define REPLAY_FILE "replay"
#define REPLAY_FILE_MAX ((size_t)96 << 20)
/* The packet identifier table's file (pktid.h). */
#define PKTID_FILE "packet-ids"
/* A session's last epoch (mqtt_client_options.epoch). */
#define EPOCH_FILE "epoch"

/* OUT_SUBSCRIBE, OUT_UNSUBSCRIBE: a change of the sites (their list);
 * OUT_RESUBSCRIBE: every site, at a connect; OUT_CLOSE: the end. */
enum out_kind {
	OUT_PUBLISH,
	OUT_PAUSE,
	OUT_CONNECT,
	OUT_STOP,
	OUT_SUBSCRIBE,
	OUT_UNSUBSCRIBE,
	OUT_UNSUBSCRIBE_FILTER, /* sites.names[0]: one filter, as it is */
	OUT_RESUBSCRIBE,
	OUT_CLOSE,
};

struct out_cmd {
	struct out_cmd *next;
	enum out_kind kind;
	int qos, retained;
	int timeout_ms;		     /* OUT_STOP, OUT_CLOSE */
	struct mqtt_subs_list sites; /* OUT_SUBSCRIBE, OUT_UNSUBSCRIBE */
	size_t len;		     /* payload bytes */
	char *topic;		     /* points into data */
	char data[];		     /* payload, then topic and its NUL */
};

/* Sites in one SUBSCRIBE or UNSUBSCRIBE: whole sites, at most
 * MQTT_SUBS_REQUEST_FILTERS filters. */
#define REQ_SITES (MQTT_SUBS_REQUEST_FILTERS / MQTT_SUBS_MAX_KINDS)
_Static_assert(REQ_SITES >= 1, "a site's filters fit in one SUBSCRIBE");

/* Sites of the next request when `left` are left to send. */
static size_t
req_sites(size_t left)
{
	return left < REQ_SITES ? left : REQ_SITES;
}

/* One SUBSCRIBE's context for its SUBACK: Paho calls onSuccess5 or
 * onFailure5 exactly once for it (at the latest from MQTTAsync_destroy,
 * MQTTAsync_freeResponses), which frees it. */
struct sub_req {
	struct mqtt_client *in;
	uint64_t generation; /* mqtt_subs_generation() when it was sent */
	size_t nsites;
	const char *sites[]; /* copies, after the pointers */
};

struct mqtt_client {
	MQTTAsync client;
	struct spool *spool;
	int wake_fd;
	char *root;
	char *client_id;
	MQTTAsync_createOptions co; /* for make_client() */
	/* Ours, not the config's: a SIGHUP frees the config, and every
	 * connect (a retry, a resume) reads these again. */
	struct mqtt_broker broker; /* the URIs, the TLS files */
	char *username;
	char *password;
	char state_topic[256]; /* "": none (a session) */
	/* What we subscribe to (mqtt_subs.h), under subs_lock: Paho's thread
	 * sets SUBACK codes, the main thread changes the sites, the publish
	 * thread reads them to subscribe. */
	enum mqtt_client_inbound inbound;
	pthread_mutex_t subs_lock;
	struct mqtt_subs *subs;
	/* A session (mqtt_client_options.session): its directory in the
	 * spool's ("" for the instance's client), the names of its side
	 * files there, the epoch it runs under, which records are its. */
	bool session;
	char *dir;
	char *persist_parent; /* the path of the directory that holds mqtt-out/ */
	char replay_name[128], pktid_name[128];
	char who[160]; /* "" or "shard session <id>: ", before its log lines */
	int64_t epoch;
	bool (*mine)(void *arg, const char *topic, size_t len);
	void *mine_arg;
	/* The session's files read and Paho's client made (the publish
	 * thread sets it; the sync thread looks before it saves or syncs). */
	_Atomic int set_up;
	_Atomic int hold;   /* enum mqtt_client_hold */
	_Atomic int taken;  /* the session was taken over: never connect again */
	_Atomic int closed; /* OUT_CLOSE done: Paho's client is gone */

	MQTTAsync_connectOptions conn;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties props;

	_Atomic int connected;
	/* A connect of ours is under way (monotonic ms of its start; 0:
	 * none): no second one meanwhile (Paho 1.3.12's MQTTAsync_connect
	 * frees and replaces the options a connect in progress reads), and
	 * a pause waits for its outcome (see pause_now). */
	_Atomic int64_t connecting;
	/* The pause's disconnect is under way (monotonic ms of its start; 0:
	 * none): set by the publish thread before MQTTAsync_disconnect,
	 * cleared by its outcome (on_disconnect_done), however long the
	 * receive callback holds Paho's lock before Paho gets to it. */
	_Atomic int64_t disconnecting;
	/* Connects and disconnects queued for the publish thread and not yet
	 * run (the main loop adds, the publish thread takes away). */
	_Atomic int link_queued;
	/* Messages in flight over the broker's maximum packet size: the next
	 * connect makes a new client first (see on_connect_success). */
	_Atomic int rebuild;
	_Atomic int connect_failed; /* a connect failed: retry */
	_Atomic int lost;	    /* the connection was lost: connect again */
	_Atomic int will_no_retain; /* the broker refused a retained will (0x9A) */
	_Atomic int will_qos0;	    /* the broker refused a QoS 1 will (0x9B) */
	_Atomic uint64_t connects;  /* CONNACKs that let us in */
	_Atomic int stopping;
	/* The connection wanted: intake paused (main thread writes; the
	 * metrics read it). mqtt_client_tick brings the link to it. */
	_Atomic int paused;
	int resumed; /* main thread: a resume whose reconnect is not yet logged */
	int64_t retry_at_ms;
	struct backoff backoff; /* 1 s to 30 s */
	int reported;		/* last connection state logged */

	pthread_mutex_t fail_lock; /* fail_why, tls_error, disc_*, server (Paho's thread writes) */
	char fail_why[256];
	char server[256]; /* the URI of the list the last connect went to */
	char tls_error[256];
	/* The broker's DISCONNECTs (MQTT 5): counts by mqtt_reason_index(),
	 * the latest's code, reason string and server reference. */
	_Atomic uint64_t disconnects[MQTT_REASONS + 1];
	_Atomic uint64_t disconnects_seen, taken_over;
	uint64_t disconnects_logged; /* main thread */
	int disc_code;
	char disc_detail[200];
	/* A connection lost without a DISCONNECT (Paho's thread): when, in
	 * monotonic ms (0: none pending); and the quick comebacks counted. */
	_Atomic int64_t lost_at_ms;
	_Atomic int disconnect_said; /* a DISCONNECT came on this connection */
	_Atomic int moved;	     /* this connection went to another URI of the list */
	_Atomic uint64_t quiet_drops;
	_Atomic int64_t quiet_drop_ms; /* how long the latest one took */
	/* The receive callback last waited for the spool (monotonic ms): the
	 * broker may then drop us for a missed keepalive, our own doing. */
	_Atomic int64_t stalled_at_ms;
	int64_t keepalive_ms;
	uint64_t quiet_drops_logged; /* main thread */
	_Atomic uint64_t received, spool_waits, published, publish_failed;
	/* What each topic delivered lately (replay.h): Paho's receive thread
	 * looks, then appends, then notes; replay_lock is held only to look
	 * or note (never while the append waits for space), and a copy taken
	 * under it (mqtt_client_save_replays) covers the spool up to noted_end. */
	pthread_mutex_t replay_lock;
	struct replay *replay;
	uint64_t replay_changes, replay_saved; /* under replay_lock */
	/* The spool's end after the last record noted: the memory holds
	 * every record before it (under replay_lock; Paho's receive thread
	 * is the spool's only writer). */
	uint64_t noted_end;
	int appending;		    /* an append of ours is under way (under replay_lock) */
	struct pktid *pktid;	    /* under replay_lock; NULL: none (DUP taken as new) */
	pthread_mutex_t save_lock;  /* one save at a time: replay_copy */
	struct replay *replay_copy; /* what is saved */
	_Atomic uint64_t replayed_retained, replayed_dup, replay_note_failed;
	struct handover *gate; /* not owned; NULL: none */
	/* INBOUND_NONE: drop what comes (mqtt_client_drop_inbound()); the
	 * kinds whose wildcard filter was unsubscribed on this connection */
	_Atomic int drop_inbound;
	_Atomic unsigned unsubscribed;
	unsigned record_flags;	/* SPOOL_SOURCE() of every record */
	_Atomic uint64_t gated; /* acknowledged, not spooled: the gate said so */
	/* What the replay memory's file covers (mqtt_client_covered()). */
	_Atomic uint64_t covered;
	_Atomic int save_failed;
	_Atomic int spool_failing;
	_Atomic int want_wake; /* the loop sleeps: write wake_fd */

	struct mqtt_persist *persist;
	MQTTClient_persistence paho_persist;

	pthread_t out_thread;
	int out_started;
	pthread_mutex_t out_lock; /* the queue and the fields below */
	pthread_cond_t out_cond;  /* work queued, or a stop done */
	struct out_cmd *out_head, *out_tail;
	size_t out_count, out_bytes; /* publishes queued */
	int out_quit;
	unsigned stop_asked; /* stops queued (main thread) */
	unsigned stop_done;  /* stops the publish thread has done */
	int disconnect_done; /* the pause's disconnect has completed (under out_lock) */
	_Atomic uint64_t publish_dropped;
	struct log_ratelimit drop_rl; /* main thread */

	/* The broker's limits from the last CONNACK (out_main and Paho's
	 * send thread obey them; Paho's receive thread sets them). */
	pthread_mutex_t limits_lock; /* the fields below */
	struct mqtt_limits limits;
	int limits_known;
	int qos_noted, retain_noted; /* said once per CONNACK */
	struct log_ratelimit fit_rl;
	mqtt_client_shorten_fn *shorten;
	_Atomic uint64_t shortened, too_large;
	_Atomic uint32_t max_packet; /* for the metrics */
};

static void out_control(struct mqtt_client *in, enum out_kind kind, int timeout_ms);
static void connect_done(struct mqtt_client *in);
static int after_read(void *ctx, char **buffer, int *buflen);
static void *out_main(void *arg);
static int restore(struct mqtt_client *in, bool fresh, uint64_t *ret_pos);
static void out_sites(struct mqtt_client *in, enum out_kind kind,
		      const struct mqtt_subs_list *list);
static void unsubscribe_held(struct mqtt_client *in, const char *topic, size_t tlen);

/* Paho's receive thread. Copies the message into the spool and returns 1;
 * Paho sends the PUBACK after we return. */
static int
on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct mqtt_client *in = ctx;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t plen = (size_t)m->payloadlen;
	int64_t recv = clocks_wall_us();
	uint64_t th = replay_topic_hash(topic, tlen);
	uint64_t ph = replay_payload_hash(m->payload, spool_stored_len(in->spool, plen), plen);
	int waited = 0, err;

	uint64_t content = pktid_content(th, ph);
	_Atomic uint64_t *replayed = NULL;

	pthread_mutex_lock(&in->replay_lock);
	/* The broker sends again what the spool has: a message whose PUBACK
	 * it did not get, under its packet identifier (pktid.h), or a
	 * retained message at a SUBSCRIBE (replay.h). Acknowledge and drop
	 * it: the first is in the spool or stored already. */
	if (m->dup && in->pktid && pktid_match(in->pktid, (uint16_t)m->msgid, content))
		replayed = &in->replayed_dup;
	else if (m->retained && replay_seen(in->replay, th, ph))
		replayed = &in->replayed_retained;
	else if ((in->gate && handover_gate(in->gate, topic, tlen) == HANDOVER_DROP) ||
		 (in->inbound == MQTT_CLIENT_INBOUND_NONE && atomic_load(&in->drop_inbound)))
		replayed = &in->gated;
	else
		in->appending = 1;
	pthread_mutex_unlock(&in->replay_lock);
	/* A message dropped is remembered under its packet identifier as
	 * one spooled is: a redelivery (DUP) after a lost PUBACK is dropped
	 * too, whatever the gate would say by then (the other stream has it). */
	if (replayed == &in->gated && in->pktid)
		pktid_set(in->pktid, (uint16_t)m->msgid, content, in->noted_end);
	if (replayed == &in->gated && in->inbound == MQTT_CLIENT_INBOUND_NONE)
		unsubscribe_held(in, topic, tlen);
	/* A retained message dropped is remembered as one spooled is: the
	 * broker sends it again at this session's next SUBSCRIBE (a new
	 * session), maybe after the hand-over, when the gate would pass it;
	 * it is a replay of what the site's stream had then. */
	if (replayed == &in->gated && m->retained) {
		if (replay_note(in->replay, th, ph) < 0)
			atomic_fetch_add(&in->replay_note_failed, 1);
		in->replay_changes++;
	}
	if (replayed) {
		atomic_fetch_add(replayed, 1);
		MQTTAsync_freeMessage(&m);
		MQTTAsync_free(topic);
		return 1;
	}
	while ((err = spool_append_flags(in->spool, topic, tlen, m->payload, plen, recv,
					 in->record_flags | (m->retained ? SPOOL_RETAINED : 0))) !=
	       0) {
		if (err == -EMSGSIZE)
			break; /* a topic over 64 KiB cannot be stored: drop it */
		if (!waited++)
			log_err("spool append failed (%s): holding the acknowledgement and retrying",
				strerror(-err));
		atomic_fetch_add(&in->spool_waits, 1);
		atomic_store(&in->spool_failing, 1);
		atomic_store(&in->stalled_at_ms, clocks_mono_ms());
		if (atomic_load(&in->stopping)) {
			/* Exiting without the PUBACK: the broker redelivers. */
			log_err("cannot store a message while stopping; exiting without acknowledging it");
			_exit(75);
		}
		usleep(100000);
	}
	pthread_mutex_lock(&in->replay_lock);
	if (err == 0) {
		if (m->retained) {
			if (replay_note(in->replay, th, ph) < 0)
				atomic_fetch_add(&in->replay_note_failed, 1);
			in->replay_changes++;
		}
		in->noted_end = spool_end(in->spool);
		if (in->pktid)
			pktid_set(in->pktid, (uint16_t)m->msgid, content, in->noted_end);
	}
	in->appending = 0;
	pthread_mutex_unlock(&in->replay_lock);
	if (waited) {
		atomic_store(&in->spool_failing, 0);
		log_notice("spool append succeeded again after %d tries", waited);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	atomic_fetch_add(&in->received, 1);
	/* The loop asks to be woken only when it is about to sleep (see
	 * mqtt_client_want_wake()); while busy it polls the spool itself. The
	 * fence orders our append before the look at want_wake, as the loop
	 * orders its request before its look at the spool's end: one of the
	 * two always sees the other. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&in->want_wake, memory_order_relaxed) &&
	    atomic_exchange(&in->want_wake, 0) && eventfd_write(in->wake_fd, 1) < 0) {
		/* the counter cannot overflow in practice; nothing to do */
	}
	return 1;
}

/* Paho's thread: the SUBACK of one SUBSCRIBE (subscribe_sites()). Paho
 * 1.3.12 (MQTTAsyncUtils.c, SUBACK) gives a SUBSCRIBE of several filters
 * to onSuccess5 even when the broker refused some or all of them:
 * reasonCodes holds one code per filter, in order (only when there are
 * several: with one, reasonCode is it, and a refusal goes to onFailure5).
 * Codes 0-2 are the granted QoS, 0x80 and up a refusal. The main loop
 * logs them (mqtt_client_tick). */
static void
on_suback(void *ctx, MQTTAsync_successData5 *r)
{
	struct sub_req *q = ctx;
	struct mqtt_client *in = q->in;
	int codes[MQTT_SUBS_REQUEST_FILTERS];
	size_t n = 0, nf = q->nsites * (size_t)mqtt_subs_kinds(in->subs);

	if (nf == 1)
		codes[n++] = (int)r->reasonCode;
	else if (r->alt.sub.reasonCodes) /* else none (Paho out of memory): unspecified */
		for (; n < (size_t)r->alt.sub.reasonCodeCount && n < nf; n++)
			codes[n] = (int)r->alt.sub.reasonCodes[n];
	pthread_mutex_lock(&in->subs_lock);
	mqtt_subs_suback(in->subs, q->generation, q->sites, q->nsites, codes, n);
	pthread_mutex_unlock(&in->subs_lock);
	free(q);
}

/* Paho's thread: a SUBSCRIBE that failed whole. With one filter that is
 * the broker's refusal (reasonCode); otherwise the connection went before
 * the SUBACK (or Paho's client is destroyed), and the next connect
 * subscribes again. */
static void
on_suback_failure(void *ctx, MQTTAsync_failureData5 *r)
{
	struct sub_req *q = ctx;
	struct mqtt_client *in = q->in;

	if (q->nsites * (size_t)mqtt_subs_kinds(in->subs) == 1 && r &&
	    (int)r->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
		int code = (int)r->reasonCode;

		pthread_mutex_lock(&in->subs_lock);
		mqtt_subs_suback(in->subs, q->generation, q->sites, 1, &code, 1);
		pthread_mutex_unlock(&in->subs_lock);
	}
	free(q);
}

/* Subscribes to every inbound filter of `sites` at QoS 1, in SUBSCRIBEs of
 * at most MQTT_SUBS_REQUEST_FILTERS filters (whole sites); on_suback()
 * reads each answer. With Retain As Published (RETAIN on a delivery says
 * the publisher retained it) and Retain Handling 1 (the retained messages
 * come at a SUBSCRIBE only for a subscription the session did not have):
 * MQTT 5.0 3.8.3.1, and what on_message() relies on (replay.h). Paho's
 * thread (on_connected) or the publish thread. */
static void
subscribe_sites(struct mqtt_client *in, const struct mqtt_subs_list *sites, uint64_t generation)
{
	char bufs[REQ_SITES * MQTT_SUBS_MAX_KINDS][TOPIC_MAX_BYTES];
	char *filters[REQ_SITES * MQTT_SUBS_MAX_KINDS];
	MQTTSubscribe_options opts[REQ_SITES * MQTT_SUBS_MAX_KINDS];
	int qos[REQ_SITES * MQTT_SUBS_MAX_KINDS], rc;

	for (size_t at = 0; at < sites->n; at += REQ_SITES) {
		size_t ns = req_sites(sites->n - at), bytes = 0;
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		struct sub_req *q;
		char *pool;
		int nf = 0;

		for (size_t i = 0; i < ns; i++)
			bytes += strlen(sites->names[at + i]) + 1;
		q = malloc(sizeof(*q) + ns * sizeof(q->sites[0]) + bytes);
		if (!q) {
			log_err("%sMQTT subscribe: out of memory; the next connect subscribes again",
				in->who);
			return;
		}
		q->in = in;
		q->generation = generation;
		q->nsites = ns;
		pool = (char *)&q->sites[ns];
		for (size_t i = 0; i < ns; i++) {
			size_t len = strlen(sites->names[at + i]) + 1;

			memcpy(pool, sites->names[at + i], len);
			q->sites[i] = pool;
			pool += len;
			for (int k = 0; k < mqtt_subs_kinds(in->subs); k++, nf++) {
				/* the root and kinds only: no lock */
				mqtt_subs_build(in->subs, q->sites[i], k, bufs[nf],
						sizeof(bufs[nf]));
				filters[nf] = bufs[nf];
				qos[nf] = 1;
				opts[nf] = (MQTTSubscribe_options)MQTTSubscribe_options_initializer;
				opts[nf].retainAsPublished = 1;
				opts[nf].retainHandling = 1;
			}
		}
		ro.onSuccess5 = on_suback;
		ro.onFailure5 = on_suback_failure;
		ro.context = q;
		ro.subscribeOptionsCount = nf;
		ro.subscribeOptionsList = opts;
		rc = MQTTAsync_subscribeMany(in->client, nf, filters, qos, &ro);
		if (rc != MQTTASYNC_SUCCESS) {
			free(q);
			if (rc != MQTTASYNC_DISCONNECTED) /* the next connect subscribes again */
				log_err("%sMQTT subscribe to %s and the other inbound filters failed:"
					" %s",
					in->who, filters[0], MQTTAsync_strerror(rc));
			return;
		}
	}
}

/* Unsubscribes from every inbound filter of `sites` (publish thread), in
 * UNSUBSCRIBEs of at most MQTT_SUBS_REQUEST_FILTERS filters. A failure
 * needs nothing: the next connect subscribes to the set as it is (the
 * broker still sends the sites that left until then; the pipeline takes
 * what comes). */
static void
unsubscribe_sites(struct mqtt_client *in, const struct mqtt_subs_list *sites)
{
	char bufs[REQ_SITES * MQTT_SUBS_MAX_KINDS][TOPIC_MAX_BYTES];
	char *filters[REQ_SITES * MQTT_SUBS_MAX_KINDS];

	for (size_t at = 0; at < sites->n; at += REQ_SITES) {
		size_t ns = req_sites(sites->n - at);
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		int nf = 0;

		for (size_t i = 0; i < ns; i++)
			for (int k = 0; k < mqtt_subs_kinds(in->subs); k++, nf++) {
				mqtt_subs_build(in->subs, sites->names[at + i], k, bufs[nf],
						sizeof(bufs[nf]));
				filters[nf] = bufs[nf];
			}
		if (MQTTAsync_unsubscribeMany(in->client, nf, filters, &ro) != MQTTASYNC_SUCCESS)
			return;
	}
}

/* Subscribes to every site of the set (a connect): Paho's thread for the
 * wildcard filters (as soon as connected, as cordond always did), the
 * publish thread for a session's sites (OUT_RESUBSCRIBE: after every
 * change of the set queued before, so that the set it reads and the
 * changes queued after it agree). */
static void
subscribe_all(struct mqtt_client *in)
{
	struct mqtt_subs_list all;
	uint64_t gen;
	int err;

	pthread_mutex_lock(&in->subs_lock);
	err = mqtt_subs_all(in->subs, &all);
	gen = mqtt_subs_generation(in->subs);
	pthread_mutex_unlock(&in->subs_lock);
	if (err < 0) {
		log_err("%sMQTT subscribe: out of memory; the next connect subscribes again",
			in->who);
		return;
	}
	if (all.n)
		subscribe_sites(in, &all, gen);
	free(all.names);
}

/* Paho's thread: a message came to a client that subscribes to nothing
 * (MQTT_CLIENT_INBOUND_NONE, mqtt_client_drop_inbound()): its session
 * holds the wildcard filter of that topic's kind from an older run (the
 * instance's own client before clustering). That filter is unsubscribed,
 * once a connection: only a filter the session is seen to hold, since
 * ejabberd's UNSUBSCRIBE of a filter a session does not hold takes a
 * reference of the filter held by another session (mod_mqtt_mnesia:
 * unsubscribe/2 decrements mqtree's count whatever the session held),
 * and that session's messages stop. */
static void
unsubscribe_held(struct mqtt_client *in, const char *topic, size_t tlen)
{
	struct topic_parts tp;
	struct mqtt_subs_list one;
	char filter[TOPIC_MAX_BYTES];

	if (topics_parse(topic, tlen, in->root, &tp) < 0 || tp.kind >= TOPIC_NINBOUND ||
	    (atomic_fetch_or(&in->unsubscribed, 1u << tp.kind) & (1u << tp.kind)) ||
	    topics_filter(filter, sizeof(filter), in->root, tp.kind) < 0 ||
	    mqtt_subs_list_make((const char *const[]){ filter }, 1, &one) < 0)
		return;
	out_sites(in, OUT_UNSUBSCRIBE_FILTER, &one);
}

/* Called on every successful connect, the first and each automatic
 * reconnect: subscribe again (the session usually still has them) and
 * announce ourselves. */
static void
on_connected(void *ctx, char *cause)
{
	struct mqtt_client *in = ctx;
	int64_t lost = atomic_exchange(&in->lost_at_ms, 0);

	(void)cause;
	/* Closed without a DISCONNECT and back at once: what a takeover of
	 * our client id looks like on Mosquitto before 2.0.15 (and a quick
	 * broker restart too). Not when we are back on another node of the
	 * list: the one we were on went away. */
	if (lost && !atomic_load(&in->disconnect_said) && !atomic_load(&in->moved) &&
	    clocks_mono_ms() - lost <= MQTT_CLIENT_QUIET_DROP_MS) {
		atomic_store(&in->quiet_drop_ms, clocks_mono_ms() - lost);
		atomic_fetch_add(&in->quiet_drops, 1);
	}
	atomic_store(&in->disconnect_said, 0);
	/* No SUBACK yet on this connection: READY waits for it. */
	pthread_mutex_lock(&in->subs_lock);
	mqtt_subs_reset(in->subs);
	pthread_mutex_unlock(&in->subs_lock);
	atomic_fetch_add(&in->connects, 1);
	atomic_store(&in->lost, 0);
	atomic_store(&in->connected, 1);
	if (in->inbound == MQTT_CLIENT_INBOUND_WILDCARD)
		subscribe_all(in);
	else if (in->inbound == MQTT_CLIENT_INBOUND_SITES)
		out_control(in, OUT_RESUBSCRIBE, 0);
	atomic_store(&in->unsubscribed, 0);
	if (in->state_topic[0] && mqtt_client_publish(in, in->state_topic, "online", 6, 1, 1) < 0)
		log_warn("cannot publish our online state");
}

static void
on_connection_lost(void *ctx, char *cause)
{
	struct mqtt_client *in = ctx;

	pthread_mutex_lock(&in->fail_lock);
	snprintf(in->fail_why, sizeof(in->fail_why), "%s", cause ? cause : "connection lost");
	pthread_mutex_unlock(&in->fail_lock);
	/* A drop while our receive callback held the connection up waiting
	 * for the spool (or just after) is a missed keepalive, not another
	 * client: not a quiet drop. */
	if (!atomic_load(&in->disconnect_said) &&
	    clocks_mono_ms() - atomic_load(&in->stalled_at_ms) > 2 * in->keepalive_ms)
		atomic_store(&in->lost_at_ms, clocks_mono_ms());
	atomic_store(&in->connected, 0);
	/* We reconnect ourselves (mqtt_client_tick), never Paho: only a connect
	 * of ours brings the CONNACK's properties (see on_connect_success). */
	atomic_store(&in->lost, 1);
}

/* Paho's thread: the broker sent a DISCONNECT (MQTT 5, 3.14). Paho 1.3.12
 * then closes without calling on_connection_lost (it marks the client
 * disconnected first); mqtt_client_tick reconnects. We count it by reason
 * and keep its reason string (and, for 0x9C/0x9D, the server to use) for
 * mqtt_client_tick's log line. */
static void
on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes code)
{
	struct mqtt_client *in = ctx;
	int i = mqtt_reason_index((int)code);
	MQTTProperty *why =
		props ? MQTTProperties_getProperty(props, MQTTPROPERTY_CODE_REASON_STRING) : NULL;
	MQTTProperty *ref = props ?
		MQTTProperties_getProperty(props, MQTTPROPERTY_CODE_SERVER_REFERENCE) :
		NULL;

	pthread_mutex_lock(&in->fail_lock);
	in->disc_code = (int)code;
	in->disc_detail[0] = '\0';
	if (why && ref)
		snprintf(in->disc_detail, sizeof(in->disc_detail),
			 ", \"%.*s\", server reference %.*s", why->value.data.len,
			 why->value.data.data, ref->value.data.len, ref->value.data.data);
	else if (why)
		snprintf(in->disc_detail, sizeof(in->disc_detail), ", \"%.*s\"",
			 why->value.data.len, why->value.data.data);
	else if (ref)
		snprintf(in->disc_detail, sizeof(in->disc_detail), ", server reference %.*s",
			 ref->value.data.len, ref->value.data.data);
	snprintf(in->fail_why, sizeof(in->fail_why),
		 "the broker disconnected us: %s (reason code 0x%02X)",
		 mqtt_reason_text((int)code) ? mqtt_reason_text((int)code) : "unknown reason",
		 (unsigned)code);
	pthread_mutex_unlock(&in->fail_lock);
	atomic_store(&in->disconnect_said, 1);
	atomic_store(&in->lost_at_ms, 0);
	atomic_fetch_add(&in->disconnects[i < 0 ? MQTT_REASONS : i], 1);
	if (code == MQTTREASONCODE_SESSION_TAKEN_OVER) {
		atomic_fetch_add(&in->taken_over, 1);
		/* A session resumed by another instance: its now (the lease
		 * says so); we never take it back on our own. */
		if (in->session)
			atomic_store(&in->taken, 1);
	}
	atomic_fetch_add(&in->disconnects_seen, 1);
	atomic_store(&in->connected, 0);
	/* We reconnect ourselves (mqtt_client_tick), never Paho: only a connect
	 * of ours brings the CONNACK's properties (see on_connect_success). */
	atomic_store(&in->lost, 1);
}

/* Paho's receive thread, on every CONNACK that lets us in, before Paho
 * sends anything queued (its send thread waits for the lock we run
 * under): keep the broker's limits (MQTT 5.0 §3.2.2.3). Paho 1.3.12
 * calls a connect's onSuccess5 with the CONNACK properties; after its own
 * automatic reconnect only the connected callback, with a cause string
 * and no properties (MQTTAsyncUtils.c, MQTTAsync_receiveThread): that is
 * why cordond makes every reconnect itself. */
static void
on_connect_success(void *ctx, MQTTAsync_successData5 *resp)
{
	struct mqtt_client *in = ctx;
	struct mqtt_limits l = MQTT_LIMITS_NONE;
	MQTTProperties *props = &resp->properties;

	pthread_mutex_lock(&in->fail_lock);
	atomic_store(&in->moved,
		     in->server[0] && resp->alt.connect.serverURI &&
			     strcmp(in->server, resp->alt.connect.serverURI) != 0);
	snprintf(in->server, sizeof(in->server), "%s",
		 resp->alt.connect.serverURI ? resp->alt.connect.serverURI : "?");
	pthread_mutex_unlock(&in->fail_lock);
	/* A new session: its packet identifiers name nothing we had, and
	 * the broker redelivers nothing of an old one (pktid.h). */
	if (!resp->alt.connect.sessionPresent) {
		pthread_mutex_lock(&in->replay_lock);
		if (in->pktid)
			pktid_clear(in->pktid);
		pthread_mutex_unlock(&in->replay_lock);
	}

	if (MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE))
		l.max_packet = (uint32_t)MQTTProperties_getNumericValue(
			props, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE);
	if (MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_MAXIMUM_QOS))
		l.max_qos = MQTTProperties_getNumericValue(props, MQTTPROPERTY_CODE_MAXIMUM_QOS);
	if (MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_RETAIN_AVAILABLE))
		l.retain_available = MQTTProperties_getNumericValue(
					     props, MQTTPROPERTY_CODE_RETAIN_AVAILABLE) != 0;
	if (MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		l.receive_max = (uint32_t)MQTTProperties_getNumericValue(
			props, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	if (MQTTProperties_hasProperty(props, MQTTPROPERTY_CODE_TOPIC_ALIAS_MAXIMUM))
		l.topic_alias_max = (uint32_t)MQTTProperties_getNumericValue(
			props, MQTTPROPERTY_CODE_TOPIC_ALIAS_MAXIMUM);
	pthread_mutex_lock(&in->limits_lock);
	if (!in->limits_known || memcmp(&l, &in->limits, sizeof(l)) != 0) {
		char mp[32];

		snprintf(mp, sizeof(mp), "%u bytes", l.max_packet);
		/* Receive maximum: Paho lowers its in-flight window to it
		 * itself; topic aliases: we send none. */
		log_notice("the broker's limits: maximum packet size %s, maximum QoS %d,"
			   " retain %savailable, receive maximum %u, topic alias maximum %u",
			   l.max_packet ? mp : "none stated", l.max_qos,
			   l.retain_available ? "" : "not ", l.receive_max, l.topic_alias_max);
	}
	in->limits = l;
	in->limits_known = 1;
	in->qos_noted = in->retain_noted = 0;
	pthread_mutex_unlock(&in->limits_lock);
	atomic_store(&in->max_packet, l.max_packet);
	/* Paho has already sent again what awaited a PUBACK, from memory,
	 * before this runs (MQTTAsyncUtils.c, MQTTAsync_completeConnection:
	 * MQTTProtocol_retry), without after_read(): one over the limit makes
	 * the broker disconnect us, and so at every reconnect. Paho has no
	 * call to drop it; a new client reads its persistence again, and
	 * mqtt_persist sets such entries aside then (out_run, OUT_CONNECT). */
	if (mqtt_persist_set_max_packet(in->persist, l.max_packet) > 0 &&
	    !atomic_exchange(&in->rebuild, 1))
		log_warn("MQTT: messages in flight are over the broker's maximum packet size of %u"
			 " bytes (Paho sent them again before the broker's limits were known): the"
			 " next connect sets them aside",
			 l.max_packet);
	connect_done(in);
}

/* Paho's thread: keep why the connect failed, for mqtt_client_tick's log.
 * A broker that refuses us answers with a CONNACK reason code, which
 * Paho 1.3.12 hands over as resp->code (MQTTAsyncUtils.c, nextOrClose:
 * "CONNACK return code"); Paho's own errors are negative; a TLS failure
 * comes only through on_tls_error. A refused will (retain or QoS not
 * supported) is sent without retain or at QoS 0 from the next connect. */
static void
on_connect_failure(void *ctx, MQTTAsync_failureData5 *resp)
{
	struct mqtt_client *in = ctx;
	int code = resp ? resp->code : 0;

	if (code == 0x9A && !atomic_exchange(&in->will_no_retain, 1))
		log_warn("the broker does not take retained messages: our will (offline state)"
			 " is sent without retain from now on");
	if (code == 0x9B && !atomic_exchange(&in->will_qos0, 1))
		log_warn("the broker does not take QoS 1: our will (offline state) is sent at"
			 " QoS 0 from now on");
	pthread_mutex_lock(&in->fail_lock);
	if (code > 0)
		snprintf(in->fail_why, sizeof(in->fail_why),
			 "the broker refused us: %s (CONNACK reason code 0x%02X)%s",
			 mqtt_connack_reason(code), (unsigned)code,
			 code == 0x86 || code == 0x87 || code == 4 || code == 5 ?
				 "; check [mqtt] username and password_file, and the broker's ACL" :
				 "");
	else if (in->tls_error[0])
		snprintf(in->fail_why, sizeof(in->fail_why), "TLS: %.240s", in->tls_error);
	else
		snprintf(in->fail_why, sizeof(in->fail_why), "%s (code %d)",
			 resp && resp->message ? resp->message : "connect failed",
			 resp ? resp->code : 0);
	in->tls_error[0] = '\0';
	pthread_mutex_unlock(&in->fail_lock);
	atomic_store(&in->connected, 0);
	atomic_store(&in->connect_failed, 1);
	connect_done(in);
}

/* Paho's thread, or out_main: our connect has its outcome (the flags
 * above are set); wakes pause_now. */
static void
connect_done(struct mqtt_client *in)
{
	atomic_store(&in->connecting, 0);
	pthread_mutex_lock(&in->out_lock);
	pthread_cond_broadcast(&in->out_cond);
	pthread_mutex_unlock(&in->out_lock);
}

/* Makes the Paho client (in->client) with our persistence and callbacks;
 * Paho reads the persistence (mqtt_persist.c's open) in it. Returns 0 or
 * -EINVAL (logged). out_main, or mqtt_client_create_with before it runs. */
static int
make_client(struct mqtt_client *in)
{
	const char *uri = mqtt_broker_first(&in->broker);
	int rc = MQTTAsync_createWithOptions(&in->client, uri, in->client_id,
					     MQTTCLIENT_PERSISTENCE_USER, &in->paho_persist,
					     &in->co);

	if (rc != MQTTASYNC_SUCCESS) {
		log_err("MQTT client for %s: %s", uri, MQTTAsync_strerror(rc));
		if (in->client)
			MQTTAsync_destroy(&in->client);
		in->client = NULL;
		return -EINVAL;
	}
	MQTTAsync_setCallbacks(in->client, in, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(in->client, in, on_connected);
	MQTTAsync_setDisconnected(in->client, in, on_disconnected);
	MQTTAsync_setAfterPersistenceRead(in->client, in, after_read);
	return 0;
}

static int
on_tls_error(const char *str, size_t len, void *ctx)
{
	struct mqtt_client *in = ctx;

	while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\r'))
		len--;
	pthread_mutex_lock(&in->fail_lock);
	snprintf(in->tls_error, sizeof(in->tls_error), "%.*s", (int)len, str);
	pthread_mutex_unlock(&in->fail_lock);
	return 0;
}

int
mqtt_client_create_with(const struct config *cfg, struct spool *spool, int wake_fd,
			const struct mqtt_client_options *opts, struct mqtt_client **ret_client)
{
	const char *id = opts->client_id ? opts->client_id : cfg->mqtt_client_id;
	const char *dir = opts->dir ? opts->dir : "";
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTProperty p;
	char persist_dir[4096];
	struct mqtt_client *in;
	int rc, err = -ENOMEM;

	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	pthread_mutex_init(&in->fail_lock, NULL);
	pthread_mutex_init(&in->out_lock, NULL);
	pthread_mutex_init(&in->limits_lock, NULL);
	pthread_mutex_init(&in->replay_lock, NULL);
	pthread_mutex_init(&in->save_lock, NULL);
	pthread_mutex_init(&in->subs_lock, NULL);
	in->fit_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 60);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&in->out_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	in->drop_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	backoff_init(&in->backoff, 1000, 30000); /* as Paho's own reconnect */
	in->spool = spool;
	in->wake_fd = wake_fd;
	if (replay_create(opts->replay_topics ? opts->replay_topics : REPLAY_MAX_TOPICS,
			  &in->replay) < 0)
		goto fail;
	atomic_store(&in->want_wake, 1);
	in->root = strdup(cfg->topic_root);
	in->client_id = strdup(id);
	in->dir = strdup(dir);
	if (!in->root || !in->client_id || !in->dir ||
	    mqtt_subs_create(cfg->topic_root, opts->handover_filters, &in->subs) < 0 ||
	    mqtt_broker_init(&in->broker, cfg) < 0)
		goto fail;
	err = -EINVAL;
	if (!id[0] || strchr(dir, '/') || strcmp(dir, ".") == 0 || strcmp(dir, "..") == 0 ||
	    strlen(dir) > 64)
		goto fail;
	in->session = opts->session;
	in->epoch = opts->epoch;
	in->mine = opts->mine;
	in->mine_arg = opts->mine_arg;
	in->inbound = opts->inbound;
	in->gate = opts->gate;
	in->record_flags = opts->record_flags & SPOOL_SOURCE_MASK;
	snprintf(in->replay_name, sizeof(in->replay_name), "%s%s" REPLAY_FILE, dir,
		 dir[0] ? "/" : "");
	snprintf(in->pktid_name, sizeof(in->pktid_name), "%s%s" PKTID_FILE, dir, dir[0] ? "/" : "");
	if (in->session)
		snprintf(in->who, sizeof(in->who), "shard session %.120s: ", id);
	else
		topics_build(in->state_topic, sizeof(in->state_topic), cfg->topic_root,
			     TOPIC_DAEMON_STATE, NULL, id);
	/* Every inbound topic of SPEC 2, and nothing we publish: every site
	 * at once ("+"), or the sites of mqtt_client_set_sites(). */
	err = -ENOMEM;
	if (in->inbound == MQTT_CLIENT_INBOUND_WILDCARD &&
	    mqtt_subs_set(in->subs, (const char *[]){ "+" }, 1, NULL, NULL, NULL) < 0)
		goto fail;
	/* Until its memory is restored (the publish thread, at the start), a
	 * session's covers what comes from now on. */
	atomic_store(&in->covered, in->session ? spool_end(spool) : 0);

	/* Outbound messages (alerts) are kept while the broker is away, in
	 * a persistence of our own (mqtt_persist.c: checksummed, written by
	 * rename, damaged entries set aside at open) so that they survive a
	 * restart too; never the oldest dropped. */
	co.sendWhileDisconnected = 1;
	co.allowDisconnectedSendAtAnyTime = 1;
	co.maxBufferedMessages = OUT_MAX_MESSAGES;
	co.deleteOldestMessages = 0;
	co.restoreMessages = 1;
	co.persistQoS0 = 0;
	snprintf(persist_dir, sizeof(persist_dir), "%s/paho", cfg->spool_dir);
	if (!in->session && access(persist_dir, F_OK) == 0)
		log_warn("%s holds the outbound queue of an older cordond (Paho's own file format):"
			 " it is not read; remove it once its alerts are no longer wanted",
			 persist_dir);
	snprintf(persist_dir, sizeof(persist_dir), "%s%s%s/mqtt-out", cfg->spool_dir,
		 dir[0] ? "/" : "", dir);
	if (!(in->persist_parent = strdup(persist_dir)))
		goto fail;
	*strrchr(in->persist_parent, '/') = '\0';
	err = mqtt_persist_create(persist_dir, &in->persist, &in->paho_persist);
	if (err < 0)
		goto fail;
	in->co = co;
	/* A session's Paho client is made by the publish thread (Paho's
	 * create takes its process-wide lock: see session_setup). */
	if (!in->session && (err = make_client(in)) < 0)
		goto fail;
	err = -ENOMEM;

	in->props = (MQTTProperties)MQTTProperties_initializer;
	p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	p.value.integer4 = (unsigned)(cfg->mqtt_session_expiry / 1000);
	MQTTProperties_add(&in->props, &p);
	p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
	p.value.integer2 = MQTT_CLIENT_RECEIVE_MAXIMUM;
	MQTTProperties_add(&in->props, &p);

	will.topicName = in->state_topic;
	will.message = "offline";
	will.retained = 1;
	will.qos = 1;
	in->will = will;

	conn.keepAliveInterval = (int)(cfg->mqtt_keepalive / 1000);
	in->keepalive_ms = cfg->mqtt_keepalive;
	atomic_store(&in->stalled_at_ms, INT64_MIN / 2); /* never (monotonic 0 is the boot) */
	conn.cleanstart = 0;
	conn.connectProperties = &in->props;
	/* Reconnects are ours (mqtt_client_tick), with the same backoff Paho's
	 * would have (1 s doubling to 30 s): see on_connect_success. */
	conn.automaticReconnect = 0;
	conn.connectTimeout = 10;
	/* Paho lowers this to the broker's Receive Maximum itself
	 * (MQTTAsync_receiveThread, on the CONNACK), at every connect. */
	conn.maxInflight = 1000;
	conn.onSuccess5 = on_connect_success;
	conn.onFailure5 = on_connect_failure;
	conn.context = in;
	conn.will = in->state_topic[0] ? &in->will : NULL;
	if (cfg->mqtt_username[0]) {
		if (!(in->username = strdup(cfg->mqtt_username)))
			goto fail;
		conn.username = in->username;
	}
	if (cfg->mqtt_password_file[0]) {
		in->password = config_read_secret(cfg->mqtt_password_file);
		if (!in->password) {
			log_err("cannot read [mqtt] password_file %s: %s", cfg->mqtt_password_file,
				errno == EINVAL ? "empty, or over 1 KiB" : strerror(errno));
			err = -EACCES;
			goto fail;
		}
		conn.password = in->password;
	}
	/* The URI to dial (one of the list: connect_now) and TLS for ssl://. */
	mqtt_broker_async_options(&in->broker, &conn, &in->ssl);
	if (conn.ssl) {
		in->ssl.ssl_error_cb = on_tls_error;
		in->ssl.ssl_error_context = in;
		conn.ssl = &in->ssl;
	}
	in->conn = conn;
	rc = pthread_create(&in->out_thread, NULL, out_main, in);
	if (rc != 0) {
		err = -rc;
		goto fail;
	}
	in->out_started = 1;
	*ret_client = in;
	return 0;
fail:
	mqtt_client_destroy(in);
	return err;
}

static void queue_link(struct mqtt_client *in, enum out_kind kind);

int
mqtt_client_start(struct mqtt_client *in)
{
	int rc;

	backoff_reset(&in->backoff);
	if (in->session) {
		queue_link(in, OUT_CONNECT); /* session_setup() first */
		return 0;
	}
	atomic_store(&in->connecting, clocks_mono_ms());
	rc = MQTTAsync_connect(in->client, &in->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		atomic_store(&in->connecting, 0);
		log_err("MQTT connect: %s", MQTTAsync_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

/* The last failure's reason (a copy in a static buffer: main thread). */
static const char *
fail_reason(struct mqtt_client *in)
{
	static char why[256];

	pthread_mutex_lock(&in->fail_lock);
	snprintf(why, sizeof(why), "%s", in->fail_why[0] ? in->fail_why : "no reason given");
	pthread_mutex_unlock(&in->fail_lock);
	return why;
}

/* What changed in the SUBACKs, collected under subs_lock for the log. */
#define NEWS_MAX 10
struct news {
	int n;
	struct {
		char filter[TOPIC_MAX_BYTES];
		int code, was;
	} item[NEWS_MAX];
};

static void
note_news(void *arg, const char *filter, int code, int was)
{
	struct news *w = arg;

	snprintf(w->item[w->n].filter, sizeof(w->item[w->n].filter), "%s", filter);
	w->item[w->n].code = code;
	w->item[w->n].was = was;
	w->n++;
}

/* Main thread: logs what changed in the SUBACKs (at most NEWS_MAX lines
 * a tick, and how many more), and the broker's DISCONNECTs and quiet
 * drops since the last call. */
static void
log_broker_news(struct mqtt_client *in)
{
	uint64_t seen = atomic_load(&in->disconnects_seen);
	uint64_t drops = atomic_load(&in->quiet_drops);
	struct news w = { 0 };
	size_t more;

	pthread_mutex_lock(&in->subs_lock);
	more = mqtt_subs_news(in->subs, note_news, &w, NEWS_MAX);
	pthread_mutex_unlock(&in->subs_lock);
	for (int i = 0; i < w.n; i++) {
		int c = w.item[i].code, was = w.item[i].was;
		const char *f = w.item[i].filter;

		if (c >= MQTTREASONCODE_UNSPECIFIED_ERROR)
			log_err("%sMQTT: the broker refused our subscription to %s: %s (reason code"
				" 0x%02X); no message on it reaches cordond (see /healthz)",
				in->who, f,
				mqtt_reason_text(c) ? mqtt_reason_text(c) : "unknown reason",
				(unsigned)c);
		else if (c < 1)
			log_warn(
				"%sMQTT: the broker granted QoS %d for %s, not the 1 we asked for: a"
				" message it cannot deliver at once is lost",
				in->who, c, f);
		else if (was != MQTT_CLIENT_SUB_PENDING)
			log_notice("%sMQTT: the broker grants our subscription to %s again",
				   in->who, f);
	}
	if (more)
		log_warn("%sMQTT: %zu more filters changed their SUBACK (cordon_mqtt_subscriptions"
			 " counts them by outcome)",
			 in->who, more);
	if (seen != in->disconnects_logged) {
		char detail[200];
		int code;

		pthread_mutex_lock(&in->fail_lock);
		code = in->disc_code;
		snprintf(detail, sizeof(detail), "%s", in->disc_detail);
		pthread_mutex_unlock(&in->fail_lock);
		if (code == MQTTREASONCODE_SESSION_TAKEN_OVER && in->session)
			log_warn(
				"%sMQTT: the broker ended the session: session taken over (reason"
				" code 0x8E%s): another instance resumed it and owns its shard now;"
				" not reconnecting",
				in->who, detail);
		else if (code == MQTTREASONCODE_SESSION_TAKEN_OVER)
			log_err("MQTT: the broker ended our session: session taken over (reason code"
				" 0x8E%s): another client connected with our client id %s and takes"
				" our messages while it holds the session; reconnecting (see"
				" docs/operations.md, \"Client id conflicts\")",
				detail, in->client_id);
		else
			log_warn("%sMQTT: the broker disconnected us: %s (reason code 0x%02X%s);"
				 " reconnecting",
				 in->who,
				 mqtt_reason_text(code) ? mqtt_reason_text(code) : "unknown reason",
				 (unsigned)code, detail);
		if (seen - in->disconnects_logged > 1) /* only the latest's reason is kept */
			log_warn("%sMQTT: %llu DISCONNECTs from the broker since the last line"
				 " (cordon_mqtt_server_disconnects_total counts them by reason)",
				 in->who, (unsigned long long)(seen - in->disconnects_logged));
		in->disconnects_logged = seen;
	}
	if (drops != in->quiet_drops_logged) {
		if (in->session)
			log_notice("%sMQTT: the connection closed without a reason from the broker"
				   " and was back in %.1f s (a broker restart, or a network"
				   " failure)",
				   in->who, (double)atomic_load(&in->quiet_drop_ms) / 1000.0);
		else
			log_warn(
				"MQTT: the connection closed without a reason from the broker and"
				" was back in %.1f s (%llu such drops so far): another client using"
				" our client id %s (Mosquitto before 2.0.15 closes a session taken"
				" over without saying so), or a broker restart; see"
				" docs/operations.md, \"Client id conflicts\"",
				(double)atomic_load(&in->quiet_drop_ms) / 1000.0,
				(unsigned long long)drops, in->client_id);
		in->quiet_drops_logged = drops;
	}
}

/* Queues a connect or the pause's disconnect for the publish thread. */
static void
queue_link(struct mqtt_client *in, enum out_kind kind)
{
	atomic_fetch_add(&in->link_queued, 1);
	out_control(in, kind, 0);
}

/* Is the change that started at `since` (monotonic ms; 0: none) still
 * under way? Past MQTT_LINK_STALE_MS we stop believing in it. */
static bool
under_way(int64_t since)
{
	return since && clocks_mono_ms() - since < MQTT_LINK_STALE_MS;
}

/* Main thread: brings the connection to the one wanted (connected unless
 * intake is paused), from whatever the pause, the resume and Paho's
 * callbacks left, in whatever order they came (mqtt_link_next decides).
 * A connect after a loss or a failure waits out the backoff. */
static void
reconcile(struct mqtt_client *in, int64_t now_ms)
{
	struct mqtt_link_view v;

	/* In this order: only we start a change, and the publish thread sets
	 * `connecting` or `disconnecting` before it counts the queued command
	 * done, so no change under way is missed. A disconnect clears
	 * `connected` before its own flag; a connect's onSuccess5 may clear
	 * `connecting` just before on_connected sets `connected`: a connect
	 * asked then finds Paho connected and is skipped (connect_now). */
	v.queued = atomic_load(&in->link_queued) > 0;
	v.connecting = under_way(atomic_load(&in->connecting));
	v.disconnecting = under_way(atomic_load(&in->disconnecting));
	v.up = atomic_load(&in->connected);
	/* A session taken over, or held down by its owner, is wanted down
	 * like a paused one; one held from connecting keeps a live link. */
	v.want_up = !atomic_load(&in->paused) && !atomic_load(&in->taken) &&
		atomic_load(&in->hold) != MQTT_CLIENT_DOWN;
	v.stopping = atomic_load(&in->stopping);
	switch (mqtt_link_next(&v)) {
	case MQTT_LINK_DISCONNECT: queue_link(in, OUT_PAUSE); break;
	case MQTT_LINK_CONNECT:
		if (atomic_load(&in->hold) != MQTT_CLIENT_GO)
			break;
		if (atomic_load(&in->connect_failed) || atomic_load(&in->lost)) {
			if (in->retry_at_ms == 0) {
				if (atomic_load(&in->connect_failed))
					log_warn(
						"%sMQTT connect to the broker failed: %s; retrying in"
						" %lld s",
						in->who, fail_reason(in),
						(long long)backoff_delay(&in->backoff) / 1000);
				in->retry_at_ms = now_ms + backoff_delay(&in->backoff);
				break;
			}
			if (now_ms < in->retry_at_ms)
				break;
			(void)backoff_next(&in->backoff);
			mqtt_broker_next(&in->broker); /* the next node, if a list */
		}
		atomic_store(&in->connect_failed, 0);
		atomic_store(&in->lost, 0);
		in->retry_at_ms = 0;
		if (in->resumed) {
			log_notice("%sMQTT: intake resumed: connecting to the broker again",
				   in->who);
			in->resumed = 0;
		}
		queue_link(in, OUT_CONNECT);
		break;
	case MQTT_LINK_NONE:
	case MQTT_LINK_WAIT: break;
	}
}

/* The link as the rest of cordond sees it: up, not paused, and not on its
 * way down for the pause. */
static int
link_shown(struct mqtt_client *in)
{
	return atomic_load(&in->connected) && !atomic_load(&in->paused) &&
		!under_way(atomic_load(&in->disconnecting)) && !atomic_load(&in->closed);
}

void
mqtt_client_tick(struct mqtt_client *in, int64_t now_ms)
{
	int connected = link_shown(in);

	log_broker_news(in);
	if (connected != in->reported) {
		if (connected) {
			char server[256];

			pthread_mutex_lock(&in->fail_lock);
			snprintf(server, sizeof(server), "%s", in->server);
			pthread_mutex_unlock(&in->fail_lock);
			log_notice("%sMQTT connected to the broker at %s as %s", in->who, server,
				   in->client_id);
		} else if (atomic_load(&in->paused) || atomic_load(&in->stopping))
			; /* said by whoever paused or stopped it */
		else if (atomic_load(&in->taken) || atomic_load(&in->hold) != MQTT_CLIENT_GO)
			log_notice("%sMQTT connection down (%s); not reconnecting", in->who,
				   fail_reason(in));
		else
			log_warn("%sMQTT connection lost (%s); reconnecting (the broker keeps our"
				 " session)",
				 in->who, fail_reason(in));
		in->reported = connected;
		backoff_reset(&in->backoff);
	}
	reconcile(in, now_ms);
}

enum fit { FIT_AS_IS, FIT_CHANGED, FIT_SET_ASIDE };

/* Makes an outbound PUBLISH obey the broker's limits of the last CONNACK
 * (nothing to do before the first): QoS down to its maximum QoS, retain
 * off when it has none (a retained empty message, which only clears, then
 * goes as a plain empty message: a subscriber of alerts/<id> reads it as
 * "gone"), and a packet over its maximum packet size
 * shortened by in->shorten or else set aside (FIT_SET_ASIDE, counted in
 * too_large and logged with topic, size and limit). A shortened payload
 * is malloc'ed into *ret_owned (the caller frees it). `props_len`: the
 * bytes of the PUBLISH's properties (1 when none). out_main and Paho's
 * send thread (after_read). */
static enum fit
fit_publish(struct mqtt_client *in, const char *topic, size_t topic_len, const void **payload,
	    size_t *len, int *qos, int *retained, size_t props_len, char **ret_owned)
{
	enum fit r = FIT_AS_IS;
	size_t size, room, n = 0;
	char *s;

	*ret_owned = NULL;
	pthread_mutex_lock(&in->limits_lock);
	if (!in->limits_known)
		goto out;
	if (*qos > in->limits.max_qos) {
		if (!in->qos_noted++)
			log_warn(
				"the broker takes QoS up to %d: outbound messages are sent at QoS %d",
				in->limits.max_qos, in->limits.max_qos);
		*qos = in->limits.max_qos;
		r = FIT_CHANGED;
	}
	if (*retained && !in->limits.retain_available) {
		if (!in->retain_noted++)
			log_warn(
				"the broker does not take retained messages: the current state of"
				" alerts (alerts/<id>) and our online state are sent without retain");
		*retained = 0;
		r = FIT_CHANGED;
	}
	size = mqtt_publish_size(topic_len, *len, *qos, props_len);
	if (!in->limits.max_packet || size <= in->limits.max_packet)
		goto out;
	room = size - *len < in->limits.max_packet ? in->limits.max_packet - (size - *len) : 0;
	s = room && in->shorten ? in->shorten(*payload, *len, room, &n) : NULL;
	if (s) {
		atomic_fetch_add(&in->shortened, 1);
		log_limited(
			&in->fit_rl, LOG_LEVEL_WARNING,
			"outbound message on %.*s: %zu bytes, over the broker's maximum packet"
			" size of %u bytes; sent shortened (optional fields left out, %zu bytes)",
			(int)topic_len, topic, size, in->limits.max_packet,
			mqtt_publish_size(topic_len, n, *qos, props_len));
		*ret_owned = s;
		*payload = s;
		*len = n;
		r = FIT_CHANGED;
	} else {
		atomic_fetch_add(&in->too_large, 1);
		log_limited(&in->fit_rl, LOG_LEVEL_ERR,
			    "outbound message on %.*s: %zu bytes, over the broker's maximum packet"
			    " size of %u bytes even shortened; set aside, not sent (an alert stays"
			    " in PostgreSQL)",
			    (int)topic_len, topic, size, in->limits.max_packet);
		r = FIT_SET_ASIDE;
	}
out:
	pthread_mutex_unlock(&in->limits_lock);
	return r;
}

/* Paho's send thread, holding its lock: Paho has read a queued PUBLISH
 * back from its persistence (mqtt_persist.c) to send it now, on a link
 * whose CONNACK we have seen. libpaho 1.3.12 keeps every queued QoS 1
 * publish only on disk and reads it back just before sending it
 * (MQTTAsyncUtils.c, MQTTAsync_processCommand: pget, then afterRead, then
 * MQTTAsync_restoreCommand), also those restored from an earlier run, so
 * this is where a message queued before we knew the broker's limits, or
 * under another broker's, is made to fit. One that cannot is replaced by
 * a QoS 0 notice on <root>/_daemon/<client id>/set_aside (topic, bytes,
 * limit): Paho has no call to drop a queued message, and this one must
 * not be sent (the broker would disconnect us, and Paho would send it
 * again first at every reconnect). Anything we cannot parse (Paho's
 * other entries, a restore at create time) passes unchanged. */
static int
after_read(void *ctx, char **buffer, int *buflen)
{
	struct mqtt_client *in = ctx;
	struct mqtt_paho_publish p;
	const void *payload;
	char *owned = NULL, *nb, notice[768], topic[512];
	size_t len, nlen;
	enum fit f;

	if (*buflen <= 0 || mqtt_paho_publish_parse(*buffer, (size_t)*buflen, &p) < 0)
		return 0;
	payload = p.payload;
	len = p.payload_len;
	f = fit_publish(in, p.topic, p.topic_len, &payload, &len, &p.qos, &p.retained,
			p.props_len ? p.props_len : 1, &owned);
	if (f == FIT_AS_IS)
		return 0;
	if (f == FIT_SET_ASIDE) {
		int n = snprintf(
			notice, sizeof(notice),
			"{\"topic\":\"%.*s\",\"bytes\":%zu,\"limit\":%u,\"why\":\"too_large\"}",
			(int)(p.topic_len > 400 ? 400 : p.topic_len), p.topic,
			mqtt_publish_size(p.topic_len, p.payload_len, p.qos,
					  p.props_len ? p.props_len : 1),
			atomic_load(&in->max_packet));

		topics_build(topic, sizeof(topic), in->root, TOPIC_DAEMON_SET_ASIDE, NULL,
			     in->client_id);
		p.topic = topic;
		p.topic_len = strlen(topic);
		p.payload = notice;
		p.payload_len = n > 0 && (size_t)n < sizeof(notice) ? (size_t)n : 0;
		p.qos = 0;
		p.retained = 0;
		if (p.props_len) { /* not the original's properties: none */
			p.props = "";
			p.props_len = 1;
		}
	} else {
		p.payload = payload;
		p.payload_len = len;
	}
	nb = mqtt_paho_publish_build(&p, MQTTAsync_malloc, &nlen);
	free(owned);
	if (!nb)
		return 0; /* out of memory: sent as it was */
	MQTTAsync_free(*buffer);
	*buffer = nb;
	*buflen = (int)nlen;
	return 0;
}

/* Hand a message to Paho (out_main only); return 0 and set *ret_token
 * (when not NULL) to its token, or -EAGAIN when Paho refuses it. */
static int
send_message(struct mqtt_client *in, const char *topic, const void *payload, size_t len, int qos,
	     int retained, MQTTAsync_token *ret_token)
{
	MQTTAsync_message m = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (!in->client) { /* a new client could not be made: see make_client */
		atomic_fetch_add(&in->publish_failed, 1);
		return -EAGAIN;
	}
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = qos;
	m.retained = retained;
	rc = MQTTAsync_sendMessage(in->client, topic, &m, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		atomic_fetch_add(&in->publish_failed, 1);
		return -EAGAIN;
	}
	atomic_fetch_add(&in->published, 1);
	if (ret_token)
		*ret_token = ro.token;
	return 0;
}

/* Appends `c` to the outbound queue and wakes out_main. */
static void
out_push(struct mqtt_client *in, struct out_cmd *c)
{
	c->next = NULL;
	pthread_mutex_lock(&in->out_lock);
	if (in->out_tail)
		in->out_tail->next = c;
	else
		in->out_head = c;
	in->out_tail = c;
	if (c->kind == OUT_PUBLISH) {
		in->out_count++;
		in->out_bytes += c->len;
	}
	pthread_cond_broadcast(&in->out_cond);
	pthread_mutex_unlock(&in->out_lock);
}

/* Queues a command without payload. Control commands are never refused:
 * they wait for memory rather than be lost (they are rare and small). */
static void
out_control(struct mqtt_client *in, enum out_kind kind, int timeout_ms)
{
	struct out_cmd *c;

	while (!(c = calloc(1, sizeof(*c))))
		usleep(10000);
	c->kind = kind;
	c->timeout_ms = timeout_ms;
	out_push(in, c);
}

/* Queues a change of the sites (its list, taken over) for the publish
 * thread; waits for memory rather than lose it, as out_control. */
static void
out_sites(struct mqtt_client *in, enum out_kind kind, const struct mqtt_subs_list *list)
{
	struct out_cmd *c;

	while (!(c = calloc(1, sizeof(*c))))
		usleep(10000);
	c->kind = kind;
	c->sites = *list;
	out_push(in, c);
}

/* What out_main does on our offline state and disconnect (mqtt_client_stop).
 * A session has no state: its DISCONNECT (reason 0x00, what Paho sends)
 * leaves the session to the broker, which queues for the next owner. */
static void
do_stop(struct mqtt_client *in, int timeout_ms)
{
	MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer5;

	if (!in->client || !MQTTAsync_isConnected(in->client))
		return;
	if (in->state_topic[0]) {
		MQTTAsync_token tok;

		/* Wait for the broker's PUBACK before disconnecting: Paho lets a
		 * disconnect with messages in flight wait out its whole timeout
		 * (it looks again only every few seconds), even when the PUBACK
		 * comes a millisecond later. Messages published before this one
		 * are acknowledged before it (QoS 1 keeps order on one link). */
		if (send_message(in, in->state_topic, "offline", 7, 1, 1, &tok) < 0)
			log_warn("cannot publish our offline state");
		else if (MQTTAsync_waitForCompletion(in->client, tok, (unsigned long)timeout_ms) !=
			 MQTTASYNC_SUCCESS)
			log_warn("the broker did not acknowledge our offline state within %d ms",
				 timeout_ms);
	}
	dopt.timeout = timeout_ms;
	MQTTAsync_disconnect(in->client, &dopt);
	for (int i = 0; i < timeout_ms / 10 && MQTTAsync_isConnected(in->client); i++)
		usleep(10000);
}

/* Paho's thread: the pause's disconnect is done (or failed: either way
 * Paho no longer works on it). Done, the link is down: our own disconnect
 * calls no connection-lost callback. Failed, the link is as it was (a loss
 * says so itself), and mqtt_client_tick disconnects again if still paused. */
static void
on_disconnect_done(struct mqtt_client *in, int ok)
{
	if (ok)
		atomic_store(&in->connected, 0);
	atomic_store(&in->disconnecting, 0);
	pthread_mutex_lock(&in->out_lock);
	in->disconnect_done = 1;
	pthread_cond_broadcast(&in->out_cond);
	pthread_mutex_unlock(&in->out_lock);
}

static void
on_disconnect_success(void *ctx, MQTTAsync_successData5 *response)
{
	(void)response;
	on_disconnect_done(ctx, 1);
}

static void
on_disconnect_failure(void *ctx, MQTTAsync_failureData5 *response)
{
	(void)response;
	on_disconnect_done(ctx, 0);
}

/* The pause: disconnects, giving the PUBACKs of what we took and our own
 * messages in flight up to 1 s to go out (a disconnect at once would drop
 * PUBACKs, and the broker would send the same messages again at each
 * resume), and waits, at most 5 s, until Paho has done it. Paho may get
 * to it much later (its lock held by a receive callback waiting for spool
 * space): `disconnecting` stays set until it has, and mqtt_client_tick
 * connects again for a resume only then. A connect of ours under way is
 * waited for first (at most its connectTimeout and 5 s): Paho 1.3.12's
 * MQTTAsync_disconnect answers MQTTASYNC_DISCONNECTED at once while the
 * client is not yet connected (MQTTAsyncUtils.c, MQTTAsync_disconnect1
 * looks only at c->connected), and the connect would then complete and
 * take messages while we believe we are paused. */
static void
pause_now(struct mqtt_client *in)
{
	MQTTAsync_disconnectOptions dopt = MQTTAsync_disconnectOptions_initializer5;
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += in->conn.connectTimeout + 5;
	pthread_mutex_lock(&in->out_lock);
	while (atomic_load(&in->connecting) &&
	       pthread_cond_timedwait(&in->out_cond, &in->out_lock, &until) == 0)
		;
	pthread_mutex_unlock(&in->out_lock);
	dopt.timeout = 1000;
	dopt.onSuccess5 = on_disconnect_success;
	dopt.onFailure5 = on_disconnect_failure;
	dopt.context = in;
	pthread_mutex_lock(&in->out_lock);
	in->disconnect_done = 0;
	pthread_mutex_unlock(&in->out_lock);
	atomic_store(&in->disconnecting, clocks_mono_ms());
	/* When the link is already down Paho answers at once, without a
	 * callback. */
	if (!in->client || MQTTAsync_disconnect(in->client, &dopt) != MQTTASYNC_SUCCESS) {
		atomic_store(&in->connected, 0);
		atomic_store(&in->disconnecting, 0);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&in->out_lock);
	while (!in->disconnect_done &&
	       pthread_cond_timedwait(&in->out_cond, &in->out_lock, &until) == 0)
		;
	pthread_mutex_unlock(&in->out_lock);
}

/* Makes a new Paho client in place of the old one (out_main, the link
 * down): Paho reads our persistence again, and mqtt_persist sets aside
 * what is over the broker's maximum packet size (see on_connect_success).
 * What Paho held only in memory (QoS 0 messages, QoS 1 ones whose entry
 * could not be written) goes with the old client. */
static int
rebuild_client(struct mqtt_client *in)
{
	if (in->client)
		MQTTAsync_destroy(&in->client);
	in->client = NULL;
	log_notice("MQTT: a new client reads the outbound queue again, without the messages in"
		   " flight over the broker's maximum packet size");
	return make_client(in);
}

/* The publish thread, before a session's first connect: its directory
 * (made if missing), whether its packet identifier table and replay
 * memory can be trusted (the epoch file: the last session of this
 * directory ran under this epoch or the one before), the epoch written,
 * the memory restored, Paho's client made. Paho's create takes its
 * process-wide lock, which a receive callback waiting for spool space
 * may hold: the main loop must never wait for it, this thread may.
 * Returns 0 or a negative errno (logged; the connect is retried). */
static int
session_setup(struct mqtt_client *in)
{
	char name[160], text[32];
	void *buf = NULL;
	size_t len = 0;
	long long last = -1;
	uint64_t pos;
	bool keep;
	int err;

	if (mkdir(in->persist_parent, 0750) < 0 && errno != EEXIST) {
		err = -errno;
		log_err("%scannot make %s: %s", in->who, in->persist_parent, strerror(-err));
		return err;
	}
	snprintf(name, sizeof(name), "%s/" EPOCH_FILE, in->dir);
	if (spool_read_file(in->spool, name, sizeof(text) - 1, &buf, &len) == 0) {
		memcpy(text, buf, len);
		text[len] = '\0';
		if (sscanf(text, "%lld", &last) != 1)
			last = -1;
		free(buf);
	}
	keep = last >= 0 && (last == in->epoch || last + 1 == in->epoch);
	if (last != in->epoch) {
		int n = snprintf(text, sizeof(text), "%lld\n", (long long)in->epoch);

		/* Not written: the next session of this directory starts
		 * empty, which is only safe. */
		if ((err = spool_write_file(in->spool, name, text, (size_t)n)) < 0)
			log_warn("%scannot write %s in the spool directory: %s", in->who, name,
				 strerror(-err));
	}
	if ((err = restore(in, !keep, &pos)) < 0)
		log_err("%scannot read the spool to restore the replay memory: %s; going on"
			" with what was read",
			in->who, strerror(-err));
	else
		atomic_store(&in->covered, pos);
	if (!in->client && (err = make_client(in)) < 0)
		return err;
	atomic_store(&in->set_up, 1);
	return 0;
}

/* A connect (out_main). One at a time, and none on a live link: then
 * mqtt_client_tick looks again after the backoff (`lost`). None once a
 * pause came after the connect was queued, nor while the session's owner
 * holds it back or it was taken over: the tick's reconcile() decides
 * again from the wanted state (mqtt_link.c). */
static void
connect_now(struct mqtt_client *in)
{
	if (atomic_load(&in->stopping) || atomic_load(&in->paused) || atomic_load(&in->taken) ||
	    atomic_load(&in->hold) != MQTT_CLIENT_GO)
		return;
	if (in->session && !atomic_load(&in->set_up) && session_setup(in) < 0) {
		atomic_store(&in->connect_failed, 1);
		return;
	}
	if (under_way(atomic_load(&in->connecting)) ||
	    (in->client && MQTTAsync_isConnected(in->client))) {
		atomic_store(&in->lost, 1);
		return;
	}
	if ((atomic_exchange(&in->rebuild, 0) || !in->client) && rebuild_client(in) < 0) {
		atomic_store(&in->connect_failed, 1);
		return;
	}
	if (atomic_load(&in->will_no_retain))
		in->will.retained = 0;
	if (atomic_load(&in->will_qos0))
		in->will.qos = 0;
	atomic_store(&in->connecting, clocks_mono_ms());
	mqtt_broker_dial(&in->broker, &in->conn); /* one URI of the list: mqtt_broker.h */
	if (MQTTAsync_connect(in->client, &in->conn) != MQTTASYNC_SUCCESS) {
		atomic_store(&in->connect_failed, 1);
		connect_done(in);
	}
}

/* Executes one command from the queue (out_main, no lock held). */
static void
out_run(struct mqtt_client *in, const struct out_cmd *c)
{
	switch (c->kind) {
	case OUT_PUBLISH: {
		const void *payload = c->data;
		size_t len = c->len;
		int qos = c->qos, retained = c->retained;
		char *owned;
		enum fit f = fit_publish(in, c->topic, strlen(c->topic), &payload, &len, &qos,
					 &retained, 1, &owned);

		if (f != FIT_SET_ASIDE &&
		    send_message(in, c->topic, payload, len, qos, retained, NULL) < 0)
			log_limited(&in->drop_rl, LOG_LEVEL_ERR,
				    "Paho refused an outbound message on %s", c->topic);
		free(owned);
		break;
	}
	case OUT_PAUSE:
		pause_now(in);
		atomic_fetch_sub(&in->link_queued, 1);
		break;
	case OUT_CONNECT:
		connect_now(in);
		atomic_fetch_sub(&in->link_queued, 1);
		break;
	case OUT_STOP:
		do_stop(in, c->timeout_ms);
		pthread_mutex_lock(&in->out_lock);
		in->stop_done++;
		pthread_cond_broadcast(&in->out_cond);
		pthread_mutex_unlock(&in->out_lock);
		break;
	case OUT_SUBSCRIBE:
	case OUT_UNSUBSCRIBE:
		/* A change of the set on a live link; a link down gets the
		 * whole set at its next connect. */
		if (in->client && MQTTAsync_isConnected(in->client)) {
			uint64_t gen;

			pthread_mutex_lock(&in->subs_lock);
			gen = mqtt_subs_generation(in->subs);
			pthread_mutex_unlock(&in->subs_lock);
			if (c->kind == OUT_SUBSCRIBE)
				subscribe_sites(in, &c->sites, gen);
			else
				unsubscribe_sites(in, &c->sites);
		}
		break;
	case OUT_UNSUBSCRIBE_FILTER:
		if (in->client && MQTTAsync_isConnected(in->client)) {
			MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

			if (MQTTAsync_unsubscribe(in->client, c->sites.names[0], &ro) ==
			    MQTTASYNC_SUCCESS)
				log_notice(
					"%sMQTT: unsubscribed from %s, a subscription of an older run"
					" (what comes there is another session's now)",
					in->who, c->sites.names[0]);
		}
		break;
	case OUT_RESUBSCRIBE:
		if (in->client && MQTTAsync_isConnected(in->client))
			subscribe_all(in);
		break;
	case OUT_CLOSE: {
		uint64_t pos;

		do_stop(in, c->timeout_ms);
		if (in->client)
			MQTTAsync_destroy(&in->client);
		in->client = NULL;
		atomic_store(&in->connected, 0);
		/* Nothing arrives any more: the memory as it ends. */
		if ((atomic_load(&in->set_up) || !in->session) &&
		    mqtt_client_save_replays(in, &pos) < 0)
			log_warn("%scannot save the replay memory at the end: a later session of"
				 " this shard under the next epoch judges a retained message again"
				 " once",
				 in->who);
		pthread_mutex_lock(&in->out_lock);
		in->stop_done++;
		pthread_cond_broadcast(&in->out_cond);
		pthread_mutex_unlock(&in->out_lock);
		atomic_store(&in->closed, 1);
		break;
	}
	}
}

/* The thread that makes every call into Paho for the main loop. It runs
 * the queue in order and, asked to quit, finishes it first (what is
 * queued then goes to Paho's persistence, for the next start). */
static void *
out_main(void *arg)
{
	struct mqtt_client *in = arg;

	pthread_mutex_lock(&in->out_lock);
	for (;;) {
		struct out_cmd *c = in->out_head;

		if (!c) {
			if (in->out_quit)
				break;
			pthread_cond_wait(&in->out_cond, &in->out_lock);
			continue;
		}
		in->out_head = c->next;
		if (!in->out_head)
			in->out_tail = NULL;
		if (c->kind == OUT_PUBLISH) {
			in->out_count--;
			in->out_bytes -= c->len;
		}
		pthread_mutex_unlock(&in->out_lock);
		out_run(in, c);
		free(c->sites.names);
		free(c);
		pthread_mutex_lock(&in->out_lock);
	}
	pthread_mutex_unlock(&in->out_lock);
	return NULL;
}

int
mqtt_client_publish(struct mqtt_client *in, const char *topic, const void *payload, size_t len,
		    int qos, int retained)
{
	size_t tlen = strlen(topic);
	struct out_cmd *c;
	int full;

	pthread_mutex_lock(&in->out_lock);
	full = in->out_count >= OUT_MAX_MESSAGES || in->out_bytes + len > OUT_MAX_BYTES;
	pthread_mutex_unlock(&in->out_lock);
	if (full) {
		atomic_fetch_add(&in->publish_dropped, 1);
		return -ENOBUFS;
	}
	c = malloc(sizeof(*c) + len + tlen + 1);
	if (!c) {
		atomic_fetch_add(&in->publish_dropped, 1);
		return -ENOMEM;
	}
	*c = (struct out_cmd){ .kind = OUT_PUBLISH, .qos = qos, .retained = retained, .len = len };
	memcpy(c->data, payload, len);
	c->topic = c->data + len;
	memcpy(c->topic, topic, tlen + 1);
	out_push(in, c);
	return 0;
}

/* Both only change the connection wanted and look at once; what is
 * still under way (a connect, the pause's disconnect) finishes first, and
 * mqtt_client_tick goes on from there (see reconcile). */
void
mqtt_client_pause(struct mqtt_client *in)
{
	if (atomic_load(&in->paused))
		return;
	atomic_store(&in->paused, 1);
	in->resumed = 0;
	atomic_store(&in->lost_at_ms, 0);
	atomic_store(&in->connect_failed, 0);
	atomic_store(&in->lost, 0);
	in->retry_at_ms = 0;
	reconcile(in, clocks_mono_ms());
}

void
mqtt_client_resume(struct mqtt_client *in)
{
	if (!atomic_load(&in->paused))
		return;
	atomic_store(&in->paused, 0);
	in->resumed = 1;
	backoff_reset(&in->backoff);
	/* A connect that failed during the pause is not this one's. */
	atomic_store(&in->lost, 0);
	atomic_store(&in->connect_failed, 0);
	in->retry_at_ms = 0;
	reconcile(in, clocks_mono_ms());
}

void
mqtt_client_stop_begin(struct mqtt_client *in, int timeout_ms)
{
	if (!in)
		return;
	atomic_store(&in->stopping, 1);
	if (in->out_started) {
		/* Everything queued before goes to Paho first, in order. */
		in->stop_asked++;
		out_control(in, OUT_STOP, timeout_ms);
	}
}

void
mqtt_client_close_begin(struct mqtt_client *in, int timeout_ms)
{
	if (!in || atomic_load(&in->closed))
		return;
	atomic_store(&in->stopping, 1);
	if (in->out_started) {
		in->stop_asked++;
		out_control(in, OUT_CLOSE, timeout_ms);
	}
}

bool
mqtt_client_is_closed(struct mqtt_client *in)
{
	return !in || atomic_load(&in->closed) || !in->out_started;
}

void
mqtt_client_hold(struct mqtt_client *in, enum mqtt_client_hold hold)
{
	if (atomic_exchange(&in->hold, (int)hold) == (int)hold)
		return;
	if (hold == MQTT_CLIENT_GO) { /* a fresh start: no backoff left from before */
		backoff_reset(&in->backoff);
		in->retry_at_ms = 0;
	}
	reconcile(in, clocks_mono_ms());
}

bool
mqtt_client_site_granted(struct mqtt_client *in, const char *site)
{
	bool ok;

	if (in->inbound != MQTT_CLIENT_INBOUND_SITES)
		return false;
	pthread_mutex_lock(&in->subs_lock);
	ok = mqtt_subs_site_granted(in->subs, site);
	pthread_mutex_unlock(&in->subs_lock);
	return ok;
}

void
mqtt_client_drop_inbound(struct mqtt_client *in)
{
	if (in->inbound == MQTT_CLIENT_INBOUND_NONE)
		atomic_store(&in->drop_inbound, 1);
}

bool
mqtt_client_is_taken_over(struct mqtt_client *in)
{
	return atomic_load(&in->taken);
}

int
mqtt_client_set_sites(struct mqtt_client *in, const char *const *sites, size_t n,
		      size_t *ret_skipped)
{
	struct mqtt_subs_list add, rm;
	int err;

	const char **named;
	size_t nn = 0, skipped = 0;

	if (in->inbound != MQTT_CLIENT_INBOUND_SITES)
		return -EINVAL;
	/* "+" would be every site (mqtt_subs.h): never a site's name here. */
	if (!(named = malloc((n ? n : 1) * sizeof(*named))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (strcmp(sites[i], "+") != 0)
			named[nn++] = sites[i];
	pthread_mutex_lock(&in->subs_lock);
	err = mqtt_subs_set(in->subs, named, nn, &add, &rm, &skipped);
	pthread_mutex_unlock(&in->subs_lock);
	free(named);
	if (err < 0)
		return err;
	if (ret_skipped)
		*ret_skipped = skipped + (n - nn);
	/* In the set's order: what the publish thread runs after a
	 * OUT_RESUBSCRIBE that read this set is a change after it. */
	if (rm.n)
		out_sites(in, OUT_UNSUBSCRIBE, &rm);
	else
		free(rm.names);
	if (add.n)
		out_sites(in, OUT_SUBSCRIBE, &add);
	else
		free(add.names);
	return 0;
}

size_t
mqtt_client_sites(struct mqtt_client *in)
{
	size_t n;

	if (in->inbound != MQTT_CLIENT_INBOUND_SITES)
		return 0;
	pthread_mutex_lock(&in->subs_lock);
	n = mqtt_subs_sites(in->subs);
	pthread_mutex_unlock(&in->subs_lock);
	return n;
}

bool
mqtt_client_is_stopped(struct mqtt_client *in)
{
	bool done;

	if (!in)
		return true;
	pthread_mutex_lock(&in->out_lock);
	done = in->stop_done == in->stop_asked;
	pthread_mutex_unlock(&in->out_lock);
	if (done)
		atomic_store(&in->connected, 0);
	return done;
}

void
mqtt_client_stop(struct mqtt_client *in, int timeout_ms)
{
	if (!in)
		return;
	mqtt_client_stop_begin(in, timeout_ms);
	pthread_mutex_lock(&in->out_lock);
	while (in->stop_done != in->stop_asked)
		pthread_cond_wait(&in->out_cond, &in->out_lock);
	pthread_mutex_unlock(&in->out_lock);
	atomic_store(&in->connected, 0);
}

void
mqtt_client_destroy(struct mqtt_client *in)
{
	if (!in)
		return;
	if (in->out_started) {
		pthread_mutex_lock(&in->out_lock);
		in->out_quit = 1;
		pthread_cond_broadcast(&in->out_cond);
		pthread_mutex_unlock(&in->out_lock);
		pthread_join(in->out_thread, NULL);
	}
	while (in->out_head) {
		struct out_cmd *c = in->out_head;

		in->out_head = c->next;
		free(c->sites.names);
		free(c);
	}
	if (in->client)
		MQTTAsync_destroy(&in->client);
	mqtt_persist_destroy(in->persist);
	MQTTProperties_free(&in->props);
	pthread_mutex_destroy(&in->fail_lock);
	pthread_mutex_destroy(&in->out_lock);
	pthread_mutex_destroy(&in->limits_lock);
	pthread_mutex_destroy(&in->replay_lock);
	pthread_mutex_destroy(&in->save_lock);
	pthread_mutex_destroy(&in->subs_lock);
	mqtt_subs_destroy(in->subs);
	replay_destroy(in->replay);
	replay_destroy(in->replay_copy);
	pktid_close(in->pktid);
	pthread_cond_destroy(&in->out_cond);
	if (in->password)
		explicit_bzero(in->password, strlen(in->password));
	free(in->password);
	free(in->username);
	mqtt_broker_finish(&in->broker);
	free(in->root);
	free(in->client_id);
	free(in->dir);
	free(in->persist_parent);
	free(in);
}

void
mqtt_client_want_wake(struct mqtt_client *in)
{
	atomic_store(&in->want_wake, 1);
}

void
mqtt_client_get_stats(struct mqtt_client *in, struct mqtt_client_stats *ret)
{
	struct mqtt_persist_stats ps = { 0 };

	if (in->persist)
		mqtt_persist_get_stats(in->persist, &ps);
	ret->received = atomic_load(&in->received);
	ret->spool_waits = atomic_load(&in->spool_waits);
	ret->published = atomic_load(&in->published);
	ret->publish_failed = atomic_load(&in->publish_failed);
	ret->publish_dropped = atomic_load(&in->publish_dropped);
	ret->replayed_retained = atomic_load(&in->replayed_retained);
	ret->replayed_dup = atomic_load(&in->replayed_dup);
	ret->gated = atomic_load(&in->gated);
	ret->replay_note_failed = atomic_load(&in->replay_note_failed);
	{
		struct replay_stats rs;

		pthread_mutex_lock(&in->replay_lock);
		replay_get_stats(in->replay, &rs);
		pthread_mutex_unlock(&in->replay_lock);
		ret->replay_topics = rs.topics;
		ret->replay_evicted = rs.evicted;
	}
	ret->connected = link_shown(in);
	ret->spool_failing = atomic_load(&in->spool_failing);
	pthread_mutex_lock(&in->out_lock);
	ret->out_queued = in->out_count;
	pthread_mutex_unlock(&in->out_lock);
	{
		struct mqtt_subs_counts sc;

		pthread_mutex_lock(&in->subs_lock);
		mqtt_subs_count(in->subs, &sc);
		pthread_mutex_unlock(&in->subs_lock);
		ret->subs_granted = sc.granted;
		ret->subs_downgraded = sc.downgraded;
		ret->subs_refused = sc.refused;
		ret->subs_pending = sc.pending;
		ret->sub_refused[0] = '\0';
		if (sc.refused)
			snprintf(ret->sub_refused, sizeof(ret->sub_refused), "%.250s (%s)",
				 sc.first_refused,
				 mqtt_reason_text(sc.first_refused_code) ?
					 mqtt_reason_text(sc.first_refused_code) :
					 "unknown reason");
	}
	if (ret->subs_refused > 1) {
		size_t n = strlen(ret->sub_refused);

		snprintf(ret->sub_refused + n, sizeof(ret->sub_refused) - n, " and %d more",
			 ret->subs_refused - 1);
	}
	for (int i = 0; i <= MQTT_REASONS; i++)
		ret->disconnects[i] = atomic_load(&in->disconnects[i]);
	ret->taken_over = atomic_load(&in->taken_over);
	ret->quiet_drops = atomic_load(&in->quiet_drops);
	ret->persist_write_failed = ps.write_failed;
	ret->persist_set_aside = ps.set_aside;
	ret->persist_read_failed = ps.read_failed;
	ret->connects = atomic_load(&in->connects);
	ret->outbound_shortened = atomic_load(&in->shortened);
	ret->outbound_too_large = atomic_load(&in->too_large) + ps.too_large;
	ret->broker_max_packet = atomic_load(&in->max_packet);
}

void
mqtt_client_set_shorten(struct mqtt_client *in, mqtt_client_shorten_fn *fn)
{
	pthread_mutex_lock(&in->limits_lock);
	in->shorten = fn;
	pthread_mutex_unlock(&in->limits_lock);
}

int
mqtt_client_filter_count(struct mqtt_client *in)
{
	size_t n;

	pthread_mutex_lock(&in->subs_lock);
	n = mqtt_subs_filters(in->subs);
	pthread_mutex_unlock(&in->subs_lock);
	return n > INT_MAX ? INT_MAX : (int)n;
}

int
mqtt_client_filter(struct mqtt_client *in, int i, char *buf, size_t len, int *ret_code)
{
	int n;

	if (i < 0)
		return -1;
	pthread_mutex_lock(&in->subs_lock);
	n = mqtt_subs_filter(in->subs, (size_t)i, buf, len, ret_code);
	pthread_mutex_unlock(&in->subs_lock);
	return n;
}

/* Fills the replay memory from the client's file and the spool records
 * of its own appended after it, and opens its packet identifier table;
 * `fresh`: neither is trusted (another owner's time), both start empty
 * and cover what comes from now on. Sets *ret_pos to the spool position
 * the memory covers. Returns 0, or a negative errno when the spool cannot
 * be read. */
static int
restore(struct mqtt_client *in, bool fresh, uint64_t *ret_pos)
{
	struct spool_reader *rd;
	struct spool_record rec;
	uint64_t pos = 0, from, records = 0;
	struct replay_stats rs;
	void *buf = NULL;
	size_t len = 0;
	int err = -ENOENT, rc = 0;
	const char *why = NULL;

	pthread_mutex_lock(&in->replay_lock);
	/* A client that receives nothing has nothing to remember (its file,
	 * from a run that received, is left as it is). */
	if (in->inbound == MQTT_CLIENT_INBOUND_NONE) {
		in->noted_end = spool_end(in->spool);
		in->replay_changes = in->replay_saved = 0;
		pthread_mutex_unlock(&in->replay_lock);
		*ret_pos = in->noted_end;
		return 0;
	}
	if (!fresh) {
		err = spool_read_file(in->spool, in->replay_name, REPLAY_FILE_MAX, &buf, &len);
		if (err == 0) {
			err = replay_load(in->replay, buf, len, spool_id(in->spool), &pos);
			free(buf);
		}
	}
	why = err == -ENOENT   ? "there is none" :
		err == -EINVAL ? "it is damaged, or from another version" :
		err == -ESTALE ? "it is another spool's" :
		err < 0	       ? strerror(-err) :
				 NULL;
	from = fresh ? spool_end(in->spool) : err < 0 ? 0 : pos;
	if (from < spool_first(in->spool) && in->session && !why) {
		/* A session's memory covers the spool up to its end while it
		 * appends nothing; the file is written when the memory
		 * changes: what came after it and is gone was not its. */
		from = spool_first(in->spool);
	} else if (from < spool_first(in->spool)) {
		/* records before the spool's first are gone: what the file
		 * would have said of them is lost */
		if (why)
			log_warn("%sreplay memory: cannot use the saved file (%s): rebuilding it"
				 " from the spool alone; a retained message delivered before what"
				 " the spool holds is judged again once, if the broker sends it"
				 " again",
				 in->who, why);
		else
			log_warn("%sreplay memory: the spool no longer holds what came after the"
				 " saved file; a retained message delivered meanwhile is judged"
				 " again once, if the broker sends it again",
				 in->who);
		from = spool_first(in->spool);
	} else if (err < 0 && err != -ENOENT) {
		log_warn("%sreplay memory: cannot use the saved file (%s): rebuilt from the"
			 " spool, which holds all it covered",
			 in->who, why);
	}
	if ((err = spool_reader_create(in->spool, from, &rd)) < 0) {
		pthread_mutex_unlock(&in->replay_lock);
		return err;
	}
	while (!fresh && (rc = spool_reader_next(rd, &rec)) == 1) {
		if (!(rec.flags & SPOOL_RETAINED) || (rec.flags & SPOOL_DAMAGED))
			continue;
		/* Its own records: those it took (their source), or with no
		 * source said (written before), those mine() says. */
		if ((rec.flags & SPOOL_SOURCE_MASK) ?
			    (rec.flags & SPOOL_SOURCE_MASK) != in->record_flags :
			    in->mine && !in->mine(in->mine_arg, rec.topic, rec.topic_len))
			continue;
		if (replay_note(in->replay, replay_topic_hash(rec.topic, rec.topic_len),
				replay_payload_hash(rec.payload, rec.payload_len, rec.orig_len)) <
		    0) {
			rc = -ENOMEM;
			break;
		}
		records++;
	}
	spool_reader_destroy(rd);
	replay_get_stats(in->replay, &rs);
	in->replay_changes = in->replay_saved = 0;
	in->noted_end = spool_end(in->spool);
	if (!in->pktid) {
		int fd = spool_open_file(in->spool, in->pktid_name);

		err = fd < 0 ? fd : pktid_open(fd, spool_id(in->spool), &in->pktid);
		if (err < 0)
			log_warn(
				"%spacket identifiers: cannot map %s in the spool directory (%s): a"
				" redelivery (DUP) of a message the spool has is stored again",
				in->who, in->pktid_name, strerror(-err));
		else if (fresh)
			pktid_clear(in->pktid);
		else
			pktid_trim(in->pktid, in->noted_end);
	}
	/* save what was read (a file at the first start), or the empty
	 * memory in place of another time's */
	if (records || err < 0 || fresh)
		in->replay_changes = 1;
	pthread_mutex_unlock(&in->replay_lock);
	if (rc < 0)
		return rc;
	*ret_pos = from;
	log_info("%sreplay memory: %" PRIu64 " topics (%" PRIu64 " records read from the spool)%s",
		 in->who, rs.topics, records,
		 fresh ? "; started empty, with the packet identifiers, for a session another"
			 " owner held" :
			 "");
	return 0;
}

int
mqtt_client_restore_replays(struct mqtt_client *in, uint64_t *ret_pos)
{
	uint64_t pos;
	int err;

	if (in->session)
		return -EINVAL; /* its start restores it (session_setup) */
	if ((err = restore(in, false, &pos)) < 0)
		return err;
	atomic_store(&in->covered, pos);
	*ret_pos = pos;
	return 0;
}

int
mqtt_client_save_replays(struct mqtt_client *in, uint64_t *ret_pos)
{
	uint64_t pos, changes;
	void *buf;
	size_t len;
	int err;

	/* A session not set up yet has noted nothing, and its restore may be
	 * reading the spool under replay_lock: not waited for. */
	if (in->session && !atomic_load(&in->set_up)) {
		*ret_pos = spool_end(in->spool);
		atomic_store(&in->covered, *ret_pos);
		return 0;
	}
	pthread_mutex_lock(&in->save_lock);
	pthread_mutex_lock(&in->replay_lock); /* held only to look or note */
	/* Every record of ours before the spool's end is noted, unless an
	 * append of ours is under way: then up to the end after our last
	 * (other clients' records in between are not ours to note). */
	pos = in->appending ? in->noted_end : spool_end(in->spool);
	if (pos < in->noted_end)
		pos = in->noted_end;
	changes = in->replay_changes;
	if (changes == in->replay_saved) {
		pthread_mutex_unlock(&in->replay_lock);
		pthread_mutex_unlock(&in->save_lock);
		*ret_pos = pos; /* nothing appended since the last save */
		atomic_store(&in->covered, pos);
		atomic_store(&in->save_failed, 0);
		return 0;
	}
	err = replay_copy(&in->replay_copy, in->replay);
	pthread_mutex_unlock(&in->replay_lock);
	if (err == 0)
		err = replay_save(in->replay_copy, spool_id(in->spool), pos, &buf, &len);
	if (err == 0) {
		err = spool_write_file(in->spool, in->replay_name, buf, len);
		free(buf);
	}
	if (err == 0) {
		pthread_mutex_lock(&in->replay_lock);
		in->replay_saved = changes;
		pthread_mutex_unlock(&in->replay_lock);
		*ret_pos = pos;
		atomic_store(&in->covered, pos);
	}
	atomic_store(&in->save_failed, err < 0);
	pthread_mutex_unlock(&in->save_lock);
	return err;
}

uint64_t
mqtt_client_covered(struct mqtt_client *in)
{
	return atomic_load(&in->save_failed) ? UINT64_MAX : atomic_load(&in->covered);
}

int
mqtt_client_sync_replays(struct mqtt_client *in)
{
	if (in->session && !atomic_load(&in->set_up)) /* its table is being opened */
		return 0;
	return in->pktid ? pktid_sync(in->pktid) : 0;
}
