/* pipeline.c - the spool's two cursors: normalize, rules, batches for the
 * store, the committed position and the release of spool segments. See
 * pipeline.h. */
#include "pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clocks.h"
#include "log.h"
#include "publisher.h"
#include "registry.h"
#include "shards.h"
#include "spool.h"
#include "store.h"
#include "syncer.h"
#include "tables.h"
#include "temp.h"
#include "topics.h"
#include "tz.h"

/* What process_record does besides normalizing: the counters and the
 * reject log (once per record: the rules cursor), the rules and the
 * messages they make (a record judged). */
#define PR_COUNT 1
#define PR_JUDGE 2

/* Normalizer callbacks: what the register says. */
static int
gate_info(void *arg, const char *site, const char *gate, struct norm_gate_info *ret)
{
	struct pipeline *pl = arg;
	const struct reg_gate *g = registry_gate(pl->reg, site, gate);

	if (!g)
		return -ENOENT;
	ret->format = g->format;
	ret->unit = g->unit;
	return 0;
}

static int64_t
local_to_utc(void *arg, const char *site, int64_t naive_s)
{
	struct pipeline *pl = arg;

	return tz_local_to_utc(registry_site_tz(pl->reg, site), naive_s);
}

int
pipeline_init(struct pipeline *pl, const struct config *cfg, const uint8_t *id_key,
	      size_t id_key_len)
{
	memset(pl, 0, sizeof(*pl));
	map_init(&pl->count.reject_reasons);
	pl->wait_shard = -1;
	pl->not_judged_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	pl->nctx.id_key = id_key;
	pl->nctx.id_key_len = id_key_len;
	pl->reg = registry_snapshot_empty(cfg->site_timezone);
	if (!pl->reg) {
		log_err("unknown [site] timezone %s", cfg->site_timezone);
		return -EINVAL;
	}
	snprintf(pl->site_tz, sizeof(pl->site_tz), "%s", cfg->site_timezone);
	pipeline_reconfigure(pl, cfg);
	pl->events = calloc(NORM_MAX_EVENTS, sizeof(*pl->events));
	pl->batches[0] = calloc(1, sizeof(struct store_batch));
	pl->batches[1] = calloc(1, sizeof(struct store_batch));
	if (!pl->events || !pl->batches[0] || !pl->batches[1])
		return -ENOMEM;
	pl->filling = pl->batches[0];
	return 0;
}

int
pipeline_open(struct pipeline *pl, struct spool *spool)
{
	uint64_t start;
	int err;

	pl->spool = spool;
	start = spool_load_checkpoint(spool);
	if (start < spool_first(spool))
		start = spool_first(spool);
	if (start > spool_end(spool))
		start = spool_end(spool);
	pl->committed = pl->store_pos = start;
	log_info("spool %s: replaying from position %" PRIu64 " (%" PRIu64
		 " bytes not yet in PostgreSQL)",
		 pl->cfg->spool_dir, start, spool_pending(spool, start));
	if ((err = spool_reader_create(spool, start, &pl->rules_rd)) < 0 ||
	    (err = spool_reader_create(spool, start, &pl->store_rd)) < 0)
		return err;
	return 0;
}

void
pipeline_finish(struct pipeline *pl)
{
	spool_reader_destroy(pl->rules_rd);
	spool_reader_destroy(pl->store_rd);
	store_batch_free(pl->batches[0]);
	store_batch_free(pl->batches[1]);
	free(pl->events);
	map_finish(&pl->count.reject_reasons, NULL);
	registry_snapshot_free(pl->reg);
}

void
pipeline_apply_timezone(struct pipeline *pl, struct registry_snapshot *s)
{
	int err;

	if (strcmp(tz_name(s->default_tz), pl->cfg->site_timezone) == 0)
		return;
	err = registry_snapshot_set_default_tz(s, pl->cfg->site_timezone);
	if (err < 0)
		log_err("cannot load [site] timezone %s (%s); sites without a zone of their own"
			" keep %s",
			pl->cfg->site_timezone, strerror(-err), tz_name(s->default_tz));
}

/* The [site] timezone of the configuration, wherever the register is
 * read: the register thread (every snapshot it loads from now on), the
 * snapshot in use, and (pipeline_set_register) each snapshot taken later,
 * which may have been loaded before the change. The register thread is
 * told whenever the configured zone is not the one it was last told,
 * whatever the snapshot in use holds. */
static void
reconfigure_timezone(struct pipeline *pl)
{
	const char *zone = pl->cfg->site_timezone;

	if (pl->registry && strcmp(pl->site_tz, zone) != 0) {
		if (registry_set_default_tz(pl->registry, zone) < 0)
			log_err("reload: out of memory; register reloads keep the old [site] timezone");
		else
			snprintf(pl->site_tz, sizeof(pl->site_tz), "%s", zone);
	}
	if (strcmp(tz_name(pl->reg->default_tz), zone) != 0) {
		pipeline_apply_timezone(pl, pl->reg);
		log_notice("sites without a time zone of their own now use %s",
			   tz_name(pl->reg->default_tz));
	}
}

void
pipeline_reconfigure(struct pipeline *pl, const struct config *cfg)
{
	pl->cfg = cfg;
	pl->nctx.topic_root = cfg->topic_root;
	pl->nctx.max_clock_skew_us = cfg->max_clock_skew * 1000;
	pl->nctx.tz_offset_s = 0; /* unused: local_to_utc knows each site's zone */
	pl->nctx.local_to_utc = local_to_utc;
	pl->nctx.gate_info = gate_info;
	pl->nctx.arg = pl;
	pl->rcfg = (struct rules_config){
		.recheck_window_us = cfg->recheck_window * 1000,
		.check_interval_us = cfg->check_interval * 1000,
		.check_grace_us = cfg->check_grace * 1000,
		.silence_timeout_us = cfg->silence_timeout * 1000,
		.exit_quota = cfg->exit_quota,
		.exit_window_us = cfg->exit_window * 1000,
		.disinfection_interval_us = cfg->disinfection_interval * 1000,
		.hotline_medical_us = cfg->hotline_medical_limit * 1000,
		.hotline_other_us = cfg->hotline_other_limit * 1000,
		.repeat_interval_us = cfg->repeat_interval * 1000,
		.max_open_alerts = cfg->max_open_alerts,
		.cards_per_household = cfg->cards_per_household,
		.need_assign_limit_us = cfg->need_assign_limit * 1000,
		.call_deadline_s = cfg->call_deadline,
		.dropoff_limit_us = cfg->dropoff_limit * 1000,
	};
	/* The thresholds are rounded as readings are and as --check-config and
	 * the reload log print them (temp.c): fever_c = 36.65 is 36.7. config.c
	 * bounds them to 30-45 degrees, so the rounding cannot fail. */
	if (temp_round(cfg->fever_c, &pl->rcfg.fever_dc) < 0 ||
	    temp_round(cfg->critical_c, &pl->rcfg.critical_dc) < 0)
		log_err("[rules] fever_c or critical_c out of range: %.2f, %.2f", cfg->fever_c,
			cfg->critical_c);

	if (pl->rules)
		rules_set_config(pl->rules, &pl->rcfg);
	pl->batch_rows = (size_t)cfg->pg_batch_rows;
	reconfigure_timezone(pl);
}

void
pipeline_set_register(struct pipeline *pl, struct registry_snapshot *s)
{
	registry_snapshot_free(pl->reg);
	/* The old snapshot's blocks not shared with the new one were the
	 * register thread's: give their pages back (glibc keeps freed memory
	 * of another thread's arena otherwise; a full reload would leave the
	 * process at twice the register). */
	malloc_trim(0);
	pl->reg = s;
	pl->reg_bytes = registry_snapshot_bytes(s);
}

/* Counts a reject by reason (the rules cursor: once per record). */
static void
count_reject(struct pipeline *pl, const char *reason)
{
	void *n = map_get(&pl->count.reject_reasons, reason);

	if (map_put(&pl->count.reject_reasons, reason, (void *)((intptr_t)n + 1), NULL) < 0)
		log_err("out of memory counting rejects");
	pl->count.rejects++;
}

/* A damaged span of the spool (the spool logged it): one reject, reason
 * spool_corrupt, keyed by the spool and the span's position so that a
 * replay lands on the same row; its first bytes are the payload. Returns
 * 0 or -ENOMEM. */
static int
process_damaged(struct pipeline *pl, const struct spool_record *rec, int what,
		struct store_batch *batch)
{
	struct store_reject r = { .received_us = clocks_wall_us(),
				  .reason = "spool_corrupt",
				  .orig_len = rec->orig_len };

	if (what & PR_COUNT)
		count_reject(pl, r.reason);
	if (!batch)
		return 0;
	snprintf(r.key, sizeof(r.key), "spool:%s:%" PRIu64, spool_id(pl->spool), rec->pos);
	snprintf(r.detail, sizeof(r.detail),
		 "spool position %" PRIu64 ": %" PRIu32
		 " damaged bytes, the record(s) in them lost (first %zu bytes kept)",
		 rec->pos, rec->orig_len, rec->payload_len);
	return store_batch_add_reject(batch, &r, "", 0, rec->payload, rec->payload_len);
}

/* Normalizes one record. `what` (PR_COUNT, PR_JUDGE): counts it, runs
 * the rules on its events and sends its reject notice; with `batch`, adds
 * its events or its reject to that batch. */
static int
process_record(struct pipeline *pl, const struct spool_record *rec, int what,
	       struct store_batch *batch)
{
	struct norm_input in = {
		.topic = rec->topic,
		.topic_len = rec->topic_len,
		.payload = rec->payload,
		.payload_len = rec->payload_len,
		.orig_len = rec->orig_len,
		.received_us = rec->recv_us,
	};
	struct norm_result res;
	int err;

	if (rec->flags & SPOOL_DAMAGED)
		return process_damaged(pl, rec, what, batch);
	/* An empty retained publication deletes a topic's retained message
	 * (MQTT 5.0 3.3.1.3): broker housekeeping, not a device's data. It
	 * is in the spool for the replay memory (replay.h) and counted. */
	if ((rec->flags & SPOOL_RETAINED) && rec->orig_len == 0) {
		if (what & PR_COUNT)
			pl->count.retained_cleared++;
		return 0;
	}
	err = normalize_message(&pl->nctx, &in, pl->events, NORM_MAX_EVENTS, &res);
	if (err < 0)
		return err;
	if (res.reason) {
		if (what & PR_COUNT) {
			count_reject(pl, res.reason);
			pl->count.by_type[0]++;
			log_limited(&pl->pub->reject_rl, LOG_LEVEL_WARNING,
				    "rejected message on %.*s: %s (%s)",
				    (int)(rec->topic_len > 200 ? 200 : rec->topic_len), rec->topic,
				    res.reason, res.detail);
		}
		if (what & PR_JUDGE)
			publisher_reject_notice(pl->pub, rec, &res);
		if (batch) {
			struct store_reject r = { .received_us = rec->recv_us,
						  .reason = res.reason,
						  .orig_len = rec->orig_len };

			/* per delivery, as a keyless event's key (normalize.c) */
			normalize_message_hash(&in, r.key);
			snprintf(r.key + 32, sizeof(r.key) - 32, ":%" PRId64, rec->recv_us);
			snprintf(r.detail, sizeof(r.detail), "%s", res.detail);
			normalize_utf8_trim(r.detail);
			err = store_batch_add_reject(batch, &r, rec->topic, rec->topic_len,
						     rec->payload, rec->payload_len);
			if (err < 0)
				return err;
		}
		return 0;
	}
	for (size_t i = 0; i < res.nevents; i++) {
		/* What the reading says: the rules' alerts and the store tell a
		 * reused record id from a redelivery by it (tables.h). */
		tables_content_hash(&pl->events[i], pl->events[i].content_hash);
		if (what & PR_COUNT) {
			pl->count.events++;
			pl->count.by_type[pl->events[i].type]++;
		}
		if (what & PR_JUDGE) {
			struct rules_clock now = clocks_rules_now();

			if (rules_event(pl->rules, pl->reg, &pl->events[i], &now, pl->out) < 0)
				log_err("out of memory in the rules: event %s not checked",
					pl->events[i].key);
			publisher_transitions(pl->pub, pl->out, pl->reg, pl->filling, rec->recv_us);
		}
		if (batch) {
			err = store_batch_add_event(batch, &pl->events[i]);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

static int
batch_has_room(struct pipeline *pl)
{
	return store_batch_rows(pl->filling) < pl->batch_rows;
}

/* The site a record's topic names (an inbound shape), into site[]; ""
 * for a record of no site (damaged, an unknown topic): not per site. */
static void
record_site(const struct pipeline *pl, const struct spool_record *rec, char *site, size_t len)
{
	struct topic_parts parts;

	site[0] = '\0';
	if ((rec->flags & SPOOL_DAMAGED) || !rec->topic ||
	    topics_parse(rec->topic, rec->topic_len, pl->cfg->topic_root, &parts) < 0 ||
	    parts.kind >= TOPIC_NINBOUND || parts.site_len == 0 || parts.site_len >= len)
		return;
	memcpy(site, parts.site, parts.site_len);
	site[parts.site_len] = '\0';
	/* the instance's own (an ack of its backlog alert): of no shard */
	if (strcmp(site, "_daemon") == 0)
		site[0] = '\0';
}

/* A clustered instance (pl->shards): what the rules cursor does with
 * `rec` (shards.h). A wait is logged when it starts and when it ends;
 * a record not judged is counted and logged (rate-limited). */
static enum shards_verdict
verdict(struct pipeline *pl, const struct spool_record *rec)
{
	char site[NORM_ID_MAX + 1];
	enum shards_verdict v;
	enum shards_why why;
	int shard;

	record_site(pl, rec, site, sizeof(site));
	shards_set_now(pl->shards, clocks_mono_ms());
	v = shards_verdict(pl->shards, site, SPOOL_SOURCE_SHARD(rec->flags), &shard, &why);
	if (v == SHARDS_WAIT) {
		if (pl->wait_shard != shard || pl->wait_why != (int)why) {
			log_info("rules wait at spool position %" PRIu64 " (site %s, shard %d): %s",
				 rec->pos, site, shard, shards_why_text(why));
			if (pl->wait_shard < 0)
				pl->wait_since_ms = clocks_mono_ms();
			pl->wait_shard = shard;
			pl->wait_why = (int)why;
		}
		return v;
	}
	if (pl->wait_shard >= 0) {
		log_info("rules go on after waiting %" PRId64 " ms for shard %d",
			 clocks_mono_ms() - pl->wait_since_ms, pl->wait_shard);
		pl->wait_shard = -1;
	}
	if (v == SHARDS_STORE_ONLY) {
		pl->count.not_judged++;
		log_limited(&pl->not_judged_rl, LOG_LEVEL_NOTICE,
			    "message of site %s stored without the rules: shard %d %s", site, shard,
			    shards_why_text(why));
	}
	return v;
}

/* Reads every new record with the rules cursor. A clustered instance's
 * cursor judges only the records of the shards it may act on, stores the
 * others without the rules, and stops before a record of a shard it owns
 * but may not act on yet (shards.h); the store cursor never passes it. */
static void
run_rules(struct pipeline *pl)
{
	struct spool_record rec;
	int rc;

	if (!pl->rules_ready)
		return;
	while ((rc = spool_reader_next(pl->rules_rd, &rec)) == 1) {
		int joined = pl->store_pos == rec.pos && batch_has_room(pl);
		int what = PR_COUNT | PR_JUDGE;

		if (pl->shards) {
			enum shards_verdict v = verdict(pl, &rec);

			if (v == SHARDS_WAIT) {
				spool_reader_seek(pl->rules_rd, rec.pos);
				return;
			}
			if (v == SHARDS_STORE_ONLY)
				what = PR_COUNT;
		}
		pl->nrecords++;
		if (process_record(pl, &rec, what, joined ? pl->filling : NULL) < 0) {
			log_err("out of memory processing the spool; retrying");
			spool_reader_seek(pl->rules_rd, rec.pos);
			return;
		}
		if (joined) {
			pl->store_pos = rec.next;
			pl->filling->end_pos = rec.next;
		}
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
}

/* Lets the store cursor catch up with the rules cursor while the batch
 * being filled has room. */
static void
catch_up(struct pipeline *pl)
{
	uint64_t target = spool_reader_pos(pl->rules_rd);
	struct spool_record rec;
	int rc = 0;

	if (pl->store_pos >= target)
		return;
	spool_reader_seek(pl->store_rd, pl->store_pos);
	while (pl->store_pos < target && batch_has_room(pl) &&
	       (rc = spool_reader_next(pl->store_rd, &rec)) == 1) {
		if (process_record(pl, &rec, 0, pl->filling) < 0) {
			log_err("out of memory processing the spool; retrying");
			return;
		}
		pl->store_pos = rec.next;
		pl->filling->end_pos = rec.next;
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
	else if (rc == 0 && spool_reader_pos(pl->store_rd) > pl->store_pos &&
		 spool_reader_pos(pl->store_rd) <= target)
		/* The reader stepped over a gap left by a cut tail (no data
		 * there): the checkpoint passes it too. */
		pl->store_pos = pl->filling->end_pos = spool_reader_pos(pl->store_rd);
}

/* Hands the filling batch to the store when the store is idle. */
static void
flush(struct pipeline *pl)
{
	struct store_batch *b = pl->filling;

	if (b->end_pos <= pl->committed && store_batch_rows(b) == 0)
		return;
	if (b->end_pos < pl->committed)
		b->end_pos = pl->committed; /* only alerts from the timers */
	if (store_submit(pl->store, b) < 0)
		return;
	pl->filling = b == pl->batches[0] ? pl->batches[1] : pl->batches[0];
	store_batch_clear(pl->filling);
}

/* Deletes the spool segments wholly before the committed position, and
 * before what the replay memory's file covers (mqtt_client_save_replays()),
 * unless its last save failed: a full disk must not keep the spool from
 * freeing what PostgreSQL has (a restart after that rebuilds the memory
 * from what the spool still holds, and says so). */
void
pipeline_release(struct pipeline *pl)
{
	uint64_t pos = pl->committed, saved = syncer_covered(pl->syncer);

	if (saved < pos)
		pos = saved;
	spool_release(pl->spool, pos);
}

static void
on_committed(struct pipeline *pl)
{
	struct store_batch *b = store_take_done(pl->store);
	int err;

	if (!b)
		return;
	if (b == pl->reseed_batch) {
		pl->reseed_batch = NULL;
		pl->reseed_due = 1;
	}
	if (b->end_pos > pl->committed)
		pl->committed = b->end_pos;
	store_batch_clear(b);
	err = spool_save_checkpoint(pl->spool, pl->committed);
	if (err < 0 && spool_check_dir(pl->spool) == SPOOL_DIR_OK)
		log_warn("cannot save the local checkpoint: %s", strerror(-err));
	pipeline_release(pl);
}

void
pipeline_pump(struct pipeline *pl)
{
	on_committed(pl);
	run_rules(pl);
	catch_up(pl);
	flush(pl);
}

uint64_t
pipeline_pending(const struct pipeline *pl)
{
	return spool_pending(pl->spool, pl->committed);
}

bool
pipeline_is_caught_up(const struct pipeline *pl)
{
	return spool_end(pl->spool) == spool_reader_pos(pl->rules_rd);
}

bool
pipeline_is_waiting(const struct pipeline *pl)
{
	return pl->wait_shard >= 0;
}
