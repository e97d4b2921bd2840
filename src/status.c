/* status.c - READY/WATCHDOG/STATUS for systemd, the /healthz and /metrics
 * text, the stats line and the stats message. Reads the other objects;
 * changes none of them (the stats message is queued on the instance's
 * MQTT client like an alert). */
#include "status.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clocks.h"
#include "intake.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "mqtt_client.h"
#include "mqtt_watch.h"
#include "normalize.h"
#include "notify.h"
#include "pipeline.h"
#include "procstat.h"
#include "publisher.h"
#include "registry.h"
#include "replay.h"
#include "retention.h"
#include "rules.h"
#include "sessions.h"
#include "spool.h"
#include "store.h"
#include "topics.h"
#include "version.h"

#define STATS_INTERVAL_MS 60000

void
status_init(struct status *st, const struct config *cfg)
{
	memset(st, 0, sizeof(*st));
	st->cfg = cfg;
}

void
status_start(struct status *st, int64_t now_ms)
{
	int err = metrics_start(st->cfg->metrics_listen, &st->metrics);

	if (err < 0)
		log_warn("metrics on %s not available (%s); running without them",
			 st->cfg->metrics_listen, strerror(-err));
	st->watchdog_ms = notify_watchdog_ms();
	st->last_stats_ms = now_ms;
	st->start_ms = now_ms;
	st->last_message_ms = now_ms - STATUS_MESSAGE_MS; /* the first once connected */
	st->last_watchdog_ms = st->last_status_ms = now_ms;
}

void
status_finish(struct status *st)
{
	metrics_stop(st->metrics);
	st->metrics = NULL;
	free(st->open_text);
	st->open_text = NULL;
	st->open_cap = 0;
}

void
status_reconfigure(struct status *st, const struct config *cfg)
{
	st->cfg = cfg;
}

void
status_log_stats(struct status *st)
{
	struct sessions_stats xs;
	const struct mqtt_client_stats *is = &xs.mqtt;
	struct store_stats ss;

	sessions_get_stats(st->sessions, clocks_mono_ms(), &xs);
	store_get_stats(st->store, &ss);
	log_info("stats: received %" PRIu64 ", events %" PRIu64 ", rejects %" PRIu64
		 ", alerts %" PRIu64 ", wrote %" PRIu64 " rows in %" PRIu64
		 " batches, backlog %" PRIu64 " bytes, broker %s, PostgreSQL %s",
		 is->received, st->pl->count.events, st->pl->count.rejects, st->pub->alerts,
		 ss.events_written + ss.rejects_written, ss.batches, pipeline_pending(st->pl),
		 is->connected ? "up" : "down", store_stats_db_text(&ss));
	if (xs.clustered)
		log_info("stats: shards %d of %d owned (%d being given back), %d of %d sessions"
			 " connected, %" PRIu64 " sites subscribed, %" PRIu64 " shards given back"
			 " and %" PRIu64 " sessions taken over since start",
			 xs.owned, xs.shards, xs.releasing, xs.connected, xs.sessions, xs.sites,
			 xs.released, xs.taken_over);
}

/* Clustered: what this instance owns (docs/operations.md, metrics). */
static void
print_cluster(struct status *st, const struct sessions_stats *xs, FILE *f)
{
	struct sessions_shard_stats sh;

	fprintf(f,
		"# HELP cordon_cluster_shards Shards the sites are split into ([cluster] shards).\n"
		"# TYPE cordon_cluster_shards gauge\ncordon_cluster_shards %d\n"
		"# HELP cordon_cluster_shards_owned Shards this instance holds the lease of"
		" (releasing: being given back).\n"
		"# TYPE cordon_cluster_shards_owned gauge\n"
		"cordon_cluster_shards_owned %d\n"
		"cordon_cluster_shards_owned{state=\"releasing\"} %d\n"
		"# HELP cordon_cluster_sessions Shard sessions of this instance (MQTT clients),"
		" and those connected.\n"
		"# TYPE cordon_cluster_sessions gauge\n"
		"cordon_cluster_sessions %d\n"
		"cordon_cluster_sessions{state=\"connected\"} %d\n"
		"# HELP cordon_cluster_sites_subscribed Sites the shard sessions subscribe to.\n"
		"# TYPE cordon_cluster_sites_subscribed gauge\n"
		"cordon_cluster_sites_subscribed %llu\n"
		"# HELP cordon_cluster_shards_given_back_total Shards whose session ended for"
		" a release (another instance's share, or the stop).\n"
		"# TYPE cordon_cluster_shards_given_back_total counter\n"
		"cordon_cluster_shards_given_back_total %llu\n"
		"# HELP cordon_cluster_sessions_taken_over_total Shard sessions the broker"
		" handed to another instance (DISCONNECT 0x8E).\n"
		"# TYPE cordon_cluster_sessions_taken_over_total counter\n"
		"cordon_cluster_sessions_taken_over_total %llu\n",
		xs->shards, xs->owned, xs->releasing, xs->sessions, xs->connected,
		(unsigned long long)xs->sites, (unsigned long long)xs->released,
		(unsigned long long)xs->taken_over);
	fprintf(f,
		"# HELP cordon_cluster_handover_markers_published_total Hand-over markers this"
		" instance published for the sites of its shards ([cluster] discovery).\n"
		"# TYPE cordon_cluster_handover_markers_published_total counter\n"
		"cordon_cluster_handover_markers_published_total %llu\n"
		"# HELP cordon_cluster_handover_dropped_total Messages the shard sessions"
		" acknowledged without storing: their site is served by another shard's stream,"
		" or a marker.\n"
		"# TYPE cordon_cluster_handover_dropped_total counter\n"
		"cordon_cluster_handover_dropped_total %llu\n"
		"# HELP cordon_cluster_handover_cuts_total Sites whose marker shard 0's stream"
		" passed here: their messages come through their own shard's stream since.\n"
		"# TYPE cordon_cluster_handover_cuts_total counter\n"
		"cordon_cluster_handover_cuts_total %llu\n"
		"# HELP cordon_cluster_handover_sites_holding Registered sites of this instance's"
		" shards not taken over from shard 0's stream yet (their marker not seen).\n"
		"# TYPE cordon_cluster_handover_sites_holding gauge\n"
		"cordon_cluster_handover_sites_holding %zu\n",
		(unsigned long long)xs->markers, (unsigned long long)xs->mqtt.gated,
		(unsigned long long)xs->cuts, xs->holding);
	fprintf(f,
		"# HELP cordon_cluster_shard_owned 1 while this instance holds the shard's"
		" lease, 2 while it gives it back.\n"
		"# TYPE cordon_cluster_shard_owned gauge\n");
	for (int k = 0; k < xs->shards; k++) {
		sessions_shard_stats(st->sessions, k, &sh);
		fprintf(f, "cordon_cluster_shard_owned{shard=\"%d\"} %d\n", k, (int)sh.state);
	}
	fprintf(f,
		"# HELP cordon_cluster_shard_session_up 1 while the shard's session is"
		" connected.\n# TYPE cordon_cluster_shard_session_up gauge\n");
	for (int k = 0; k < xs->shards; k++) {
		sessions_shard_stats(st->sessions, k, &sh);
		fprintf(f, "cordon_cluster_shard_session_up{shard=\"%d\"} %d\n", k, sh.connected);
	}
	fprintf(f,
		"# HELP cordon_cluster_shard_sites Sites of the shard its session subscribes"
		" to.\n# TYPE cordon_cluster_shard_sites gauge\n");
	for (int k = 0; k < xs->shards; k++) {
		sessions_shard_stats(st->sessions, k, &sh);
		fprintf(f, "cordon_cluster_shard_sites{shard=\"%d\"} %zu\n", k, sh.sites);
	}
	fprintf(f,
		"# HELP cordon_cluster_shard_messages_received_total Messages this instance"
		" appended to its spool from the shard's sessions.\n"
		"# TYPE cordon_cluster_shard_messages_received_total counter\n");
	for (int k = 0; k < xs->shards; k++) {
		sessions_shard_stats(st->sessions, k, &sh);
		fprintf(f, "cordon_cluster_shard_messages_received_total{shard=\"%d\"} %llu\n", k,
			(unsigned long long)sh.received);
	}
}

/* Appends `s` at p; returns the end. */
static char *
put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* The longest sample of cordon_alerts_open: its fixed text, a site
 * (escaped: twice its length at most), a kind name (under 32), a state
 * and a count. */
#define OPEN_SAMPLE_MAX (64 + 2 * NORM_ID_MAX + 32 + 10)

/* One sample of cordon_alerts_open at p (room for OPEN_SAMPLE_MAX);
 * returns the end. */
static char *
put_open_sample(char *p, const char *site, const char *kind, const char *state, uint32_t n)
{
	char digits[11];
	int d = 0;

	p = put(p, "cordon_alerts_open{site=\"");
	p = metrics_put_label_value(p, site);
	p = put(p, "\",kind=\"");
	p = put(p, kind);
	p = put(p, "\",state=\"");
	p = put(p, state);
	p = put(p, "\"} ");
	do
		digits[d++] = (char)('0' + n % 10);
	while ((n /= 10));
	while (d)
		*p++ = digits[--d];
	*p++ = '\n';
	return p;
}

/* cordon_alerts_open: one sample per site, kind and state with at least
 * one open alert, from the counts the rules keep (no pass over the
 * alerts). The rules of this instance only: clustered, the sites of the
 * shards it owns and its own _daemon alerts (docs/operations.md).
 *
 * Its HELP and TYPE go to `f` (the text's last lines), the samples into
 * st->open_text, kept from one render to the next, which metrics_publish()
 * appends. A city's 10,000 sites with open alerts of two kinds are 20,000
 * samples, 1.4 MB: through fprintf into the memstream they took 40 ms of
 * the main loop, written by hand into it 19 ms (the stream growing line by
 * line), this way about 5 ms (docs/performance.md, bench/metrics_render).
 * Out of memory, samples are left out. Returns the samples' length. */
static size_t
print_alerts_open(struct status *st, FILE *f)
{
	const struct rules *r = st->pl->rules;
	struct rules_open o;
	size_t used = 0;

	fprintf(f,
		"# HELP cordon_alerts_open Open (not resolved) alerts of this instance's rules,"
		" by site, kind and state (raised: not acknowledged; acked); an aggregate alert"
		" counts one; no sample for a site, kind and state without one.\n"
		"# TYPE cordon_alerts_open gauge\n");
	for (size_t it = 0; rules_open_next(r, &it, &o);) {
		const char *kind = alert_state_kind_name(o.kind);

		if (st->open_cap - used < 2 * OPEN_SAMPLE_MAX) {
			size_t cap = st->open_cap ? 2 * st->open_cap : 64 * 1024;
			char *b = realloc(st->open_text, cap);

			if (!b)
				break;
			st->open_text = b;
			st->open_cap = cap;
		}
		if (o.raised)
			used = (size_t)(put_open_sample(st->open_text + used, o.site, kind,
							"raised", o.raised) -
					st->open_text);
		if (o.acked)
			used = (size_t)(put_open_sample(st->open_text + used, o.site, kind, "acked",
							o.acked) -
					st->open_text);
	}
	return used;
}

/* Renders the Prometheus text and hands it to the HTTP thread. */
static void
render_metrics(struct status *st, const struct sessions_stats *xs, const struct store_stats *ss)
{
	int64_t began_us = clocks_mono_us();
	const struct mqtt_client_stats *is = &xs->mqtt;
	char *text = NULL;
	size_t len = 0, open_len;
	const char *key;
	void *v;
	FILE *f;
	uint64_t used = spool_bytes(st->pl->spool);
	enum spool_dir_state ds = spool_check_dir(st->pl->spool);
	int werr = spool_write_error(st->pl->spool);
	struct spool_stats sps;
	/* The spool first: while it takes nothing, the receive callback waits
	 * inside Paho and the broker soon drops us too. */
	const char *why = ds == SPOOL_DIR_DELETED ? "spool directory deleted" :
		ds == SPOOL_DIR_REPLACED	  ? "spool directory replaced" :
		werr || is->spool_failing	  ? "spool not writable" :
		st->intake->disk_low		  ? "spool disk full: intake paused" :
		!is->connected			  ? "broker not connected" :
		xs->down			  ? xs->down_why :
						    "";
	char sub_why[384];

	if (!why[0] && is->subs_refused) {
		snprintf(sub_why, sizeof(sub_why), "subscription refused: %s", is->sub_refused);
		why = sub_why;
	}

	if (!st->metrics)
		return;
	f = open_memstream(&text, &len);
	if (!f)
		return;
	version_print_build_info(f, "cordond");
	procstat_print(f);
	fprintf(f,
		"# HELP cordon_messages_received_total Messages appended to the spool.\n"
		"# TYPE cordon_messages_received_total counter\n"
		"cordon_messages_received_total %llu\n",
		(unsigned long long)is->received);
	fprintf(f,
		"# HELP cordon_mqtt_replays_dropped_total Messages the broker sent again that the"
		" spool already has: a retained message at a SUBSCRIBE, a redelivery (DUP).\n"
		"# TYPE cordon_mqtt_replays_dropped_total counter\n"
		"cordon_mqtt_replays_dropped_total{why=\"retained\"} %llu\n"
		"cordon_mqtt_replays_dropped_total{why=\"redelivered\"} %llu\n",
		(unsigned long long)is->replayed_retained, (unsigned long long)is->replayed_dup);
	fprintf(f,
		"# HELP cordon_mqtt_retained_cleared_total Empty retained messages (a retained"
		" message deleted): not stored, not a reject.\n"
		"# TYPE cordon_mqtt_retained_cleared_total counter\n"
		"cordon_mqtt_retained_cleared_total %llu\n",
		(unsigned long long)st->pl->count.retained_cleared);
	fprintf(f,
		"# HELP cordon_replay_memory_topics Topics whose retained payload cordond"
		" remembers to tell replays from new retained messages.\n"
		"# TYPE cordon_replay_memory_topics gauge\ncordon_replay_memory_topics %llu\n"
		"# HELP cordon_replay_memory_evicted_total Topics forgotten to stay within %u.\n"
		"# TYPE cordon_replay_memory_evicted_total counter\n"
		"cordon_replay_memory_evicted_total %llu\n"
		"# HELP cordon_replay_memory_failed_total Deliveries not remembered (out of memory).\n"
		"# TYPE cordon_replay_memory_failed_total counter\n"
		"cordon_replay_memory_failed_total %llu\n",
		(unsigned long long)is->replay_topics, REPLAY_MAX_TOPICS,
		(unsigned long long)is->replay_evicted, (unsigned long long)is->replay_note_failed);
	fprintf(f,
		"# HELP cordon_messages_total Messages normalized, by event type (rejected: not).\n"
		"# TYPE cordon_messages_total counter\n");
	fprintf(f, "cordon_messages_total{type=\"rejected\"} %llu\n",
		(unsigned long long)st->pl->count.by_type[0]);
	for (int t = 1; t <= EVENT_TYPES; t++)
		fprintf(f, "cordon_messages_total{type=\"%s\"} %llu\n",
			normalize_type_name((enum event_type)t),
			(unsigned long long)st->pl->count.by_type[t]);
	fprintf(f,
		"# HELP cordon_cluster_events_not_judged_total Messages of sites of shards this"
		" instance does not own, stored without running the rules (clustered).\n"
		"# TYPE cordon_cluster_events_not_judged_total counter\n"
		"cordon_cluster_events_not_judged_total %llu\n",
		(unsigned long long)st->pl->count.not_judged);
	fprintf(f,
		"# HELP cordon_events_stored_total Event rows written to PostgreSQL, by type.\n"
		"# TYPE cordon_events_stored_total counter\n");
	for (int t = 1; t <= EVENT_TYPES; t++)
		fprintf(f, "cordon_events_stored_total{type=\"%s\"} %llu\n",
			normalize_type_name((enum event_type)t),
			(unsigned long long)ss->rows_by_type[t]);
	fprintf(f,
		"# HELP cordon_rejects_total Rejected messages, by reason.\n"
		"# TYPE cordon_rejects_total counter\n");
	for (size_t it = 0; map_next(&st->pl->count.reject_reasons, &it, &key, &v);)
		fprintf(f, "cordon_rejects_total{reason=\"%s\"} %llu\n", key,
			(unsigned long long)(intptr_t)v);
	fprintf(f,
		"# HELP cordon_alert_transitions_total Alert transitions, by kind and transition.\n"
		"# TYPE cordon_alert_transitions_total counter\n");
	for (int k = 0; k < KIND_COUNT; k++)
		for (int w = 0; w < 4; w++)
			fprintf(f,
				"cordon_alert_transitions_total{kind=\"%s\",transition=\"%s\"} %llu\n",
				alert_state_kind_name((enum alert_kind)k),
				publisher_transition_name(w),
				(unsigned long long)st->pub->transitions[k][w]);
	fprintf(f,
		"# HELP cordon_spool_bytes Bytes in the spool.\n# TYPE cordon_spool_bytes gauge\n"
		"cordon_spool_bytes %llu\n",
		(unsigned long long)used);
	fprintf(f,
		"# HELP cordon_spool_backlog_bytes Spool bytes not yet in PostgreSQL.\n"
		"# TYPE cordon_spool_backlog_bytes gauge\ncordon_spool_backlog_bytes %llu\n",
		(unsigned long long)pipeline_pending(st->pl));
	spool_get_stats(st->pl->spool, &sps);
	fprintf(f,
		"# HELP cordon_spool_writable 0 while the spool takes no message (disk full or failing,"
		" directory deleted or replaced): nothing is acknowledged then.\n"
		"# TYPE cordon_spool_writable gauge\ncordon_spool_writable %d\n",
		ds == SPOOL_DIR_OK && !werr);
	fprintf(f,
		"# HELP cordon_spool_damaged_spans_total Damaged spans of the spool skipped by its"
		" readers; each lost at least one record and is a spool_corrupt reject.\n"
		"# TYPE cordon_spool_damaged_spans_total counter\n"
		"cordon_spool_damaged_spans_total %llu\n",
		(unsigned long long)sps.damaged_spans);
	fprintf(f,
		"# HELP cordon_spool_damaged_bytes_total Bytes in those spans.\n"
		"# TYPE cordon_spool_damaged_bytes_total counter\n"
		"cordon_spool_damaged_bytes_total %llu\n",
		(unsigned long long)sps.damaged_bytes);
	fprintf(f,
		"# HELP cordon_spool_syncs_total fdatasyncs of spool data ([spool] sync).\n"
		"# TYPE cordon_spool_syncs_total counter\ncordon_spool_syncs_total %llu\n",
		(unsigned long long)sps.syncs);
	fprintf(f,
		"# HELP cordon_spool_torn_bytes Bytes of a torn spool tail cut at start.\n"
		"# TYPE cordon_spool_torn_bytes gauge\ncordon_spool_torn_bytes %llu\n",
		(unsigned long long)sps.torn_bytes);
	fprintf(f,
		"# HELP cordon_spool_disk_free_bytes Free bytes on the spool's file system.\n"
		"# TYPE cordon_spool_disk_free_bytes gauge\ncordon_spool_disk_free_bytes %llu\n",
		(unsigned long long)(st->intake->disk_free == UINT64_MAX ? 0 :
									   st->intake->disk_free));
	fprintf(f,
		"# HELP cordon_intake_paused 1 while intake is paused (spool full).\n"
		"# TYPE cordon_intake_paused gauge\ncordon_intake_paused %d\n",
		st->intake->paused);
	fprintf(f,
		"# HELP cordon_postgres_up 1 when PostgreSQL is reachable (connected, or"
		" refusing writes: see cordon_postgres_writes_held).\n"
		"# TYPE cordon_postgres_up gauge\ncordon_postgres_up %d\n",
		ss->db_up);
	store_stats_print(ss, f);
	fprintf(f,
		"# HELP cordon_register_cards Cards in the register in use.\n"
		"# TYPE cordon_register_cards gauge\ncordon_register_cards %zu\n"
		"# HELP cordon_register_households Households in the register in use.\n"
		"# TYPE cordon_register_households gauge\ncordon_register_households %zu\n"
		"# HELP cordon_register_bytes Memory the register in use holds.\n"
		"# TYPE cordon_register_bytes gauge\ncordon_register_bytes %zu\n"
		"# HELP cordon_register_load_seconds How long loading the register in use took.\n"
		"# TYPE cordon_register_load_seconds gauge\ncordon_register_load_seconds %.3f\n",
		st->pl->reg->ncards, st->pl->reg->nhouseholds, st->pl->reg_bytes,
		st->pl->reg->load_seconds);
	if (st->retention) {
		fprintf(f,
			"# HELP cordon_retention_rows_removed_total Rows removed as older than"
			" [site] retention_days, by table.\n"
			"# TYPE cordon_retention_rows_removed_total counter\n");
		for (int i = 0; i < RETENTION_TABLES; i++)
			fprintf(f, "cordon_retention_rows_removed_total{table=\"%s\"} %llu\n",
				retention_table(i),
				(unsigned long long)retention_removed(st->retention, i));
		fprintf(f,
			"# HELP cordon_retention_runs_total Retention runs finished"
			" (failed: stopped by an error, tried again at the next run).\n"
			"# TYPE cordon_retention_runs_total counter\n"
			"cordon_retention_runs_total{result=\"done\"} %llu\n"
			"cordon_retention_runs_total{result=\"failed\"} %llu\n",
			(unsigned long long)retention_runs(st->retention),
			(unsigned long long)retention_failures(st->retention));
	}
	fprintf(f,
		"# HELP cordon_broker_up 1 when the MQTT broker is connected.\n"
		"# TYPE cordon_broker_up gauge\ncordon_broker_up %d\n",
		is->connected);
	fprintf(f,
		"# HELP cordon_mqtt_subscriptions Inbound topic filters by the broker's SUBACK on"
		" this connection: granted (at QoS 1), downgraded (granted QoS 0), refused,"
		" pending (no SUBACK yet).\n# TYPE cordon_mqtt_subscriptions gauge\n"
		"cordon_mqtt_subscriptions{state=\"granted\"} %d\n"
		"cordon_mqtt_subscriptions{state=\"downgraded\"} %d\n"
		"cordon_mqtt_subscriptions{state=\"refused\"} %d\n"
		"cordon_mqtt_subscriptions{state=\"pending\"} %d\n",
		is->subs_granted, is->subs_downgraded, is->subs_refused, is->subs_pending);
	fprintf(f,
		"# HELP cordon_mqtt_subscription_reason_code Each inbound filter's SUBACK code:"
		" 0-2 the granted QoS, 128 and up refused (135 not authorized), -1 none yet.\n"
		"# TYPE cordon_mqtt_subscription_reason_code gauge\n");
	for (int i = 0; i < mqtt_client_filter_count(sessions_instance(st->sessions)); i++) {
		char filter[TOPIC_MAX_BYTES];
		int code;

		if (mqtt_client_filter(sessions_instance(st->sessions), i, filter, sizeof(filter),
				       &code) >= 0)
			fprintf(f, "cordon_mqtt_subscription_reason_code{filter=\"%s\"} %d\n",
				filter, code);
	}
	fprintf(f,
		"# HELP cordon_mqtt_server_disconnects_total DISCONNECTs from the broker (MQTT 5),"
		" by reason.\n# TYPE cordon_mqtt_server_disconnects_total counter\n");
	for (int i = 0; i <= MQTT_REASONS; i++) {
		int code = mqtt_reason_code_at(i);
		char label[64];

		if (!is->disconnects[i] && code != 0x8E)
			continue;
		snprintf(label, sizeof(label), "%s", code < 0 ? "other" : mqtt_reason_text(code));
		for (char *c = label; *c; c++)
			if (*c == ' ')
				*c = '_';
		fprintf(f, "cordon_mqtt_server_disconnects_total{reason=\"%s\"} %llu\n", label,
			(unsigned long long)is->disconnects[i]);
	}
	fprintf(f,
		"# HELP cordon_mqtt_session_taken_over_total Another client took our client id:"
		" seen as the broker's DISCONNECT 0x8E (evidence reason_code) or, from a broker"
		" that closes without a reason (Mosquitto before 2.0.15), as a drop back within"
		" %d s (evidence quiet_drop; a quick broker restart counts too).\n"
		"# TYPE cordon_mqtt_session_taken_over_total counter\n"
		"cordon_mqtt_session_taken_over_total{evidence=\"reason_code\"} %llu\n"
		"cordon_mqtt_session_taken_over_total{evidence=\"quiet_drop\"} %llu\n",
		MQTT_CLIENT_QUIET_DROP_MS / 1000, (unsigned long long)is->taken_over,
		(unsigned long long)is->quiet_drops);
	fprintf(f,
		"# HELP cordon_mqtt_outbound_queued Alerts and notices waiting for the publish thread.\n"
		"# TYPE cordon_mqtt_outbound_queued gauge\ncordon_mqtt_outbound_queued %llu\n",
		(unsigned long long)is->out_queued);
	fprintf(f,
		"# HELP cordon_mqtt_outbound_dropped_total Outbound messages not sent: queue full,"
		" refused by Paho, or over the broker's maximum packet size even shortened.\n"
		"# TYPE cordon_mqtt_outbound_dropped_total counter\n"
		"cordon_mqtt_outbound_dropped_total{why=\"queue_full\"} %llu\n"
		"cordon_mqtt_outbound_dropped_total{why=\"refused\"} %llu\n"
		"cordon_mqtt_outbound_dropped_total{why=\"too_large\"} %llu\n",
		(unsigned long long)is->publish_dropped, (unsigned long long)is->publish_failed,
		(unsigned long long)is->outbound_too_large);
	fprintf(f,
		"# HELP cordon_mqtt_outbound_shortened_total Outbound messages sent without their"
		" optional fields to fit the broker's maximum packet size.\n"
		"# TYPE cordon_mqtt_outbound_shortened_total counter\n"
		"cordon_mqtt_outbound_shortened_total %llu\n",
		(unsigned long long)is->outbound_shortened);
	fprintf(f,
		"# HELP cordon_mqtt_connects_total Connections the broker accepted (CONNACK success).\n"
		"# TYPE cordon_mqtt_connects_total counter\ncordon_mqtt_connects_total %llu\n",
		(unsigned long long)is->connects);
	fprintf(f,
		"# HELP cordon_mqtt_broker_max_packet_bytes The broker's maximum packet size"
		" from its last CONNACK (0: none stated).\n"
		"# TYPE cordon_mqtt_broker_max_packet_bytes gauge\n"
		"cordon_mqtt_broker_max_packet_bytes %u\n",
		is->broker_max_packet);
	fprintf(f,
		"# HELP cordon_mqtt_outbound_unpersisted_total Outbound messages that could not be written to disk (kept in memory only).\n"
		"# TYPE cordon_mqtt_outbound_unpersisted_total counter\n"
		"cordon_mqtt_outbound_unpersisted_total %llu\n",
		(unsigned long long)is->persist_write_failed);
	fprintf(f,
		"# HELP cordon_mqtt_outbound_lost_total Queued outbound messages found cut or damaged on disk, or gone from it.\n"
		"# TYPE cordon_mqtt_outbound_lost_total counter\n"
		"cordon_mqtt_outbound_lost_total %llu\n",
		(unsigned long long)(is->persist_set_aside + is->persist_read_failed));
	fprintf(f,
		"# HELP cordon_batch_rows Rows per committed batch.\n"
		"# TYPE cordon_batch_rows histogram\n");
	histogram_print(&ss->batch_rows, "cordon_batch_rows", NULL, f);
	fprintf(f,
		"# HELP cordon_store_seconds Time to write and commit a batch.\n"
		"# TYPE cordon_store_seconds histogram\n");
	histogram_print(&ss->batch_seconds, "cordon_store_seconds", NULL, f);
	fprintf(f,
		"# HELP cordon_fever_alert_latency_seconds From receiving a reading to publishing its fever alert.\n"
		"# TYPE cordon_fever_alert_latency_seconds histogram\n");
	histogram_print(&st->pub->fever_latency, "cordon_fever_alert_latency_seconds", NULL, f);
	if (xs->clustered)
		print_cluster(st, xs, f);
	fprintf(f,
		"# HELP cordon_metrics_render_seconds How long the main loop took to render"
		" the previous text of /metrics (every 2 s).\n"
		"# TYPE cordon_metrics_render_seconds gauge\n"
		"cordon_metrics_render_seconds %.6f\n",
		st->render_seconds);
	open_len = print_alerts_open(st, f); /* the last: its samples follow */
	fclose(f);
	metrics_publish(st->metrics, text, len, st->open_text, open_len, why[0] == '\0', why);
	free(text);
	st->render_seconds = (double)(clocks_mono_us() - began_us) / 1e6;
}

/* The stats message on <root>/_daemon/<client id>/stats (docs/topics.md):
 * the figures of the stats line and the metrics as one JSON object, QoS
 * 0 and not retained, through the instance's own client. Not retained: a
 * retained one would outlive the instance and be read as current by a
 * later subscriber (the retained .../state says whether it runs). Sent
 * only while that client is connected: a late figure is worth nothing,
 * and must not wait in Paho's buffer beside the alerts while the broker
 * is away. */
static void
send_stats_message(struct status *st, const struct sessions_stats *xs, const struct store_stats *ss,
		   int64_t now)
{
	char topic[TOPIC_MAX_BYTES], ts[64];
	uint64_t raised, acked;
	json_t *o;
	char *s = NULL;

	if (topics_build(topic, sizeof(topic), st->cfg->topic_root, TOPIC_DAEMON_STATS, NULL,
			 st->cfg->mqtt_client_id) < 0)
		return;
	rules_open_totals(st->pl->rules, &raised, &acked);
	normalize_format_time(clocks_wall_us(), ts, sizeof(ts));
	/* "YYYY-MM-DD HH:MM:SS.ffffff+00" -> RFC 3339 with milliseconds, as
	 * the alerts' times */
	ts[10] = 'T';
	ts[23] = 'Z';
	ts[24] = '\0';
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s,"
		      " s:b}",
		      "instance", st->cfg->mqtt_client_id, "version", version_cordon(), "ts", ts,
		      "uptime_s", (json_int_t)((now - st->start_ms) / 1000), "received",
		      (json_int_t)xs->mqtt.received, "events", (json_int_t)st->pl->count.events,
		      "rejected", (json_int_t)st->pl->count.rejects, "stored",
		      (json_int_t)(ss->events_written + ss->rejects_written), "backlog_bytes",
		      (json_int_t)pipeline_pending(st->pl), "spool_bytes",
		      (json_int_t)spool_bytes(st->pl->spool), "alert_transitions",
		      (json_int_t)st->pub->alerts, "alerts_open", (json_int_t)(raised + acked),
		      "alerts_acked", (json_int_t)acked, "postgres", store_stats_db_text(ss),
		      "intake_paused", st->intake->paused != 0);
	if (o && xs->clustered)
		json_object_set_new(o, "shards_owned", json_integer(xs->owned));
	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s &&
	    mqtt_client_publish(sessions_instance(st->sessions), topic, s, strlen(s), 0, 0) < 0)
		log_debug("stats message not queued: the outbound queue is full");
	free(s);
}

/* READY=1 once the broker is connected (the spool is open by then),
 * WATCHDOG=1 at half the interval, STATUS= every 2 s, metrics. */
static void
service_tick(struct status *st, int64_t now)
{
	struct sessions_stats xs;
	struct mqtt_client_stats is;
	struct store_stats ss;
	char owns[160] = "";

	sessions_get_stats(st->sessions, now, &xs);
	is = xs.mqtt;
	/* Connected means subscribed too: the SUBACK has come. */
	if (!st->ready_sent && ((is.connected && !is.subs_pending) || st->intake->paused)) {
		notify_ready();
		st->ready_sent = 1;
		if (st->intake->paused)
			log_notice("ready: spool open, intake paused");
		else if (is.subs_refused)
			log_err("ready, but not whole: subscription refused: %s", is.sub_refused);
		else
			log_notice("ready: broker connected and subscribed, spool open");
	}
	if (st->watchdog_ms && now - st->last_watchdog_ms >= st->watchdog_ms / 2) {
		notify_watchdog();
		st->last_watchdog_ms = now;
	}
	if (now - st->last_status_ms < 2000)
		return;
	store_get_stats(st->store, &ss);
	if (xs.clustered)
		snprintf(owns, sizeof(owns),
			 ", shards %d/%d owned, %d/%d sessions up, %llu sites%s%s", xs.owned,
			 xs.shards, xs.connected, xs.sessions, (unsigned long long)xs.sites,
			 xs.down ? ", " : "", xs.down ? xs.down_why : "");
	notify_status("%.0f msg/s in, broker %s, PostgreSQL %s, backlog %llu bytes%s%s%s%s",
		      (double)(is.received - st->last_received) * 1000.0 /
			      (double)(now - st->last_status_ms),
		      is.connected ? "up" : "down", store_stats_db_text(&ss),
		      (unsigned long long)pipeline_pending(st->pl),
		      st->intake->dir_state != SPOOL_DIR_OK ?
			      ", spool directory gone: intake stopped" :
			      st->intake->write_err ? ", spool not writable: intake stopped" :
			      st->intake->disk_low  ? ", intake paused (spool disk full)" :
			      st->intake->paused    ? ", intake paused (spool full)" :
						      "",
		      is.connected && is.subs_refused ? ", subscription refused: " : "",
		      is.connected && is.subs_refused ? is.sub_refused : "", owns);
	st->last_received = is.received;
	st->last_status_ms = now;
	render_metrics(st, &xs, &ss);
	if (is.connected && now - st->last_message_ms >= STATUS_MESSAGE_MS) {
		send_stats_message(st, &xs, &ss, now);
		st->last_message_ms = now;
	}
}

void
status_tick(struct status *st, int64_t now_ms)
{
	service_tick(st, now_ms);
	if (now_ms - st->last_stats_ms >= STATS_INTERVAL_MS) {
		status_log_stats(st);
		st->last_stats_ms = now_ms;
	}
}
