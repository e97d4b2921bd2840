/* publisher.c - the main loop's outbound messages: alert transitions and
 * reject notices become MQTT messages in the client's publish queue. The
 * main loop never calls into Paho: mqtt_client_publish() only queues
 * (docs/architecture.md, "Why a publish thread"). */
#include "publisher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "clocks.h"
#include "mqtt_client.h"
#include "shards.h"
#include "spool.h"
#include "store.h"
#include "topics.h"

static const char *const transition_names[4] = { "raised", "updated", "acked", "resolved" };

const char *
publisher_transition_name(int i)
{
	return transition_names[i];
}

static int
transition_index(const char *what)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(what, transition_names[i]) == 0)
			return i;
	return 3;
}

void
publisher_init(struct publisher *p, const struct config *cfg)
{
	static const double bounds[HIST_BUCKETS] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
						     0.05,   0.1,   0.5,   1,	  5,	60 };

	memset(p, 0, sizeof(*p));
	p->cfg = cfg;
	p->reject_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	p->publish_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	p->fever_latency.bounds = bounds;
}

void
publisher_finish(struct publisher *p)
{
	(void)p; /* nothing allocated */
}

void
publisher_reconfigure(struct publisher *p, const struct config *cfg)
{
	p->cfg = cfg;
}

void
publisher_transitions(struct publisher *p, struct rules_output *out,
		      const struct registry_snapshot *reg, struct store_batch *batch,
		      int64_t received_us)
{
	for (size_t i = 0; i < out->n; i++) {
		const struct alert_transition *t = &out->t[i];
		const struct alert *a = &t->a;
		char topic[512];
		char *json = alerts_render(t, reg);
		int shard = -1;
		int64_t epoch = 0;

		if (!json) {
			log_err("out of memory rendering alert %s", a->alert_id);
			continue;
		}
		alerts_topic(p->cfg->topic_root, a, topic, sizeof(topic));
		if (mqtt_client_publish(p->mqtt, topic, json, strlen(json), 1, 0) < 0)
			log_limited(&p->publish_rl, LOG_LEVEL_ERR, "cannot queue alert %s on %s",
				    a->alert_id, topic);
		alerts_state_topic(p->cfg->topic_root, a, topic, sizeof(topic));
		if (mqtt_client_publish(p->mqtt, topic, json,
					a->state == ALERT_RESOLVED ? 0 : strlen(json), 1, 1) < 0)
			log_limited(&p->publish_rl, LOG_LEVEL_ERR,
				    "cannot queue the state of alert %s", a->alert_id);
		log_notice("alert %s %s (%s, %s, count %u) %s", alert_state_kind_name(a->kind),
			   t->what, alert_state_severity_name(a->severity), a->subject, a->count,
			   a->alert_id);
		p->transitions[a->kind][transition_index(t->what)]++;
		if (a->kind == KIND_FEVER && received_us && transition_index(t->what) <= 1)
			histogram_observe(&p->fever_latency,
					  (double)(clocks_wall_us() - received_us) / 1e6);
		/* a clustered instance's alert of a site carries its lease's
		 * epoch: PostgreSQL refuses it once the shard moved on */
		if (p->shards && !alert_state_is_instance_kind(a->kind))
			epoch = shards_epoch_of(p->shards, a->site, &shard);
		if (store_batch_add_alert(batch, t, shard, epoch) < 0)
			log_err("out of memory: alert %s %s is published but not stored",
				a->alert_id, t->what);
		p->alerts++;
		free(json);
	}
	if (out->reject_reason[0]) {
		char topic[256];
		char ack_topic[256];
		char *json;

		topics_build(ack_topic, sizeof(ack_topic), p->cfg->topic_root, TOPIC_ACK,
			     out->reject_site, NULL);
		json = alerts_reject_notice(ack_topic, strlen(ack_topic), "unknown_alert",
					    out->reject_reason, "", 0);
		topics_build(topic, sizeof(topic), p->cfg->topic_root, TOPIC_REJECT,
			     out->reject_site, NULL);
		if (json && mqtt_client_publish(p->mqtt, topic, json, strlen(json), 0, 0) < 0)
			log_limited(&p->publish_rl, LOG_LEVEL_WARNING, "cannot publish on %s",
				    topic);
		log_limited(&p->reject_rl, LOG_LEVEL_WARNING, "ack refused on site %s: %s",
			    out->reject_site, out->reject_reason);
		free(json);
	}
	rules_output_clear(out);
}

void
publisher_reject_notice(struct publisher *p, const struct spool_record *rec,
			const struct norm_result *res)
{
	char topic[256];
	char *json;

	if (!res->site[0])
		return; /* no site to tell */
	json = alerts_reject_notice(rec->topic, rec->topic_len, res->reason, res->detail,
				    rec->payload, rec->payload_len);
	topics_build(topic, sizeof(topic), p->cfg->topic_root, TOPIC_REJECT, res->site, NULL);
	if (json && mqtt_client_publish(p->mqtt, topic, json, strlen(json), 0, 0) < 0)
		log_limited(&p->publish_rl, LOG_LEVEL_WARNING, "cannot publish on %s", topic);
	free(json);
}
