/* publisher.h - outbound messages of the main loop: the rules' alert
 * transitions and the reject notices, handed to the MQTT client's publish
 * queue (mqtt_client_publish; its publish thread makes the call into
 * Paho), with the counters of what was published. */
#ifndef CORDON_PUBLISHER_H
#define CORDON_PUBLISHER_H

#include <stdint.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "normalize.h"
#include "rules.h"

struct mqtt_client;
struct registry_snapshot;
struct shards;
struct spool_record;
struct store_batch;

/* Embedded in the daemon (publisher_init/publisher_finish). */
struct publisher {
	const struct config *cfg; /* topic_root */
	struct mqtt_client *mqtt; /* NULL until the client is made */
	/* Clustered: the shards, whose lease epochs the alert rows carry
	 * (store.h, struct store_alert); NULL: rows not fenced. */
	const struct shards *shards;
	struct log_ratelimit reject_rl; /* rejected messages, refused acks */
	struct log_ratelimit publish_rl;
	uint64_t alerts;		     /* transitions published */
	uint64_t transitions[KIND_COUNT][4]; /* raised, updated, acked, resolved */
	struct histogram fever_latency;	     /* receive -> alert published, s */
};

void publisher_init(struct publisher *p, const struct config *cfg);
void publisher_finish(struct publisher *p);
/* After a reload: `cfg` is the configuration in force. */
void publisher_reconfigure(struct publisher *p, const struct config *cfg);
/* Publishes the transitions in `out` (QoS 1 on alert/<kind>, and the
 * retained current state on alerts/<id>, cleared on resolve), adds them
 * to `batch` for PostgreSQL, sends an ack's reject notice, and clears
 * `out`. `received_us`: the receive time of the message that caused them
 * (for the fever latency), 0 for the timers. */
void publisher_transitions(struct publisher *p, struct rules_output *out,
			   const struct registry_snapshot *reg, struct store_batch *batch,
			   int64_t received_us);
/* A reject notice on <root>/<site>/reject for a message the normalizer
 * refused (nothing when the topic named no site). */
void publisher_reject_notice(struct publisher *p, const struct spool_record *rec,
			     const struct norm_result *res);
/* "raised", "updated", "acked", "resolved" for 0..3. */
const char *publisher_transition_name(int i);

#endif
