/* daemon.c - the main loop (epoll over signalfd, timerfd and eventfds).
 *
 * Two cursors read the spool. The rules cursor normalizes every record
 * once, runs the rules and publishes alerts at once (alerts never wait for
 * PostgreSQL). The same normalized events go into the batch being filled
 * for the store. When the store falls behind (PostgreSQL down or slow)
 * and the batch is full, the store cursor stops where it is and later
 * catches up on its own, normalizing again, while the rules cursor goes on. */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/statvfs.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "mqtt_client.h"
#include "log.h"
#include "map.h"
#include "metrics.h"
#include "normalize.h"
#include "notify.h"
#include "registry.h"
#include "replay.h"
#include "rules.h"
#include "spool.h"
#include "store.h"
#include "tables.h"

#define TICK_MS 100
#define STATS_INTERVAL_MS 60000
#define RULE_STATE_WAIT_MS 5000 /* at start, rules wait this long for G3 state */
/* Open alerts past max_open_alerts of a site and kind folded at start in
 * one pass (each pass's are resolved in PostgreSQL before the next is
 * loaded): what a pass holds in memory is bounded. */
#define RESTORE_FOLD_STEP 1000

enum { SRC_SIGNAL = 1, SRC_TIMER, SRC_SPOOL, SRC_STORE, SRC_REGISTER };

struct counters {
	uint64_t events;
	uint64_t rejects;
	uint64_t alerts;
	uint64_t retained_cleared;	     /* empty retained messages: no data */
	uint64_t by_type[EVENT_TYPES + 1];   /* events normalized, by type */
	struct map reject_reasons;	     /* reason -> count (intptr) */
	uint64_t transitions[KIND_COUNT][4]; /* raised, updated, acked, resolved */
	struct histogram fever_latency;	     /* receive -> alert published, s */
};

struct daemon {
	struct config *cfg;
	const char *config_path;
	struct spool *spool;
	struct mqtt_client *mqtt;
	struct store *store;
	int epfd, sigfd, timerfd, wakefd, donefd, regfd;

	struct spool_reader *rules_rd; /* ahead: rules and alerts */
	struct spool_reader *store_rd; /* catch-up when the store lags */
	uint64_t store_pos;	       /* records before this are in a batch */
	uint64_t committed;	       /* in PostgreSQL */
	struct store_batch *batches[2];
	struct store_batch *filling;
	size_t batch_rows;
	int polling;	      /* a stream: poll the spool, unwoken */
	int64_t last_wake_us; /* the receive thread's last wake-up */
	uint64_t nrecords;    /* records the rules cursor has read */

	struct norm_context nctx;
	struct registry *registry;
	struct registry_snapshot *reg; /* the register as the rules see it */
	size_t reg_bytes;	       /* registry_snapshot_bytes(reg), counted when taken */
	uint8_t *id_key;
	size_t id_key_len;
	struct rules_config rcfg;
	struct rules *rules;
	struct rules_output out;
	int64_t last_rules_tick_ms;
	int64_t db_down_since_ms;	  /* 0 while PostgreSQL is up */
	int rules_ready;		  /* rule state restored, or given up on */
	struct store_batch *reseed_batch; /* once committed: the next restore pass */
	int reseed_due;			  /* ... once the outbound queue has drained */
	struct metrics *metrics;
	int ready_sent; /* READY=1 told to systemd */
	int64_t watchdog_ms, last_watchdog_ms, last_status_ms;
	uint64_t last_received; /* for the rate in STATUS= */
	int64_t started_ms;
	struct event *events;
	/* Another client taking our client id (client_id_conflict). */
	struct mqtt_conflict conflict;
	uint64_t conflict_seen; /* takeovers and quiet drops noted */

	struct counters count;
	struct log_ratelimit reject_rl;
	struct log_ratelimit publish_rl;
	int64_t last_stats_ms;

	/* The interval fdatasync of the spool (sync_main). */
	pthread_t sync_thread;
	int sync_started;
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond; /* CLOCK_MONOTONIC */
	int sync_stop;		  /* under sync_lock, as the two below */
	enum spool_sync_mode sync_mode;
	int64_t sync_interval_ms;
	int stopping;
	int64_t stop_deadline_ms;
	int paused;		      /* intake paused: the spool or its disk is full */
	uint64_t pause_at, resume_at; /* spool bytes */

	/* The spool's health as last logged (watch_spool). */
	enum spool_dir_state dir_state;
	int write_err;	       /* -errno: appends fail */
	int recreate_err;      /* the last failure to make the directory again */
	int stop_ingest;       /* SIGTERM while the directory is gone: mqtt_client_stop() waits */
	uint64_t disk_reserve; /* pause below this many free bytes on the disk */
	uint64_t disk_free;    /* free bytes on the spool's disk, last look */
	int disk_low;	       /* the pause is for the disk */
	int64_t disk_checked_us;
	int64_t segment_bytes;	/* the spool's, fixed at the start */
	int64_t wall_offset_us; /* CLOCK_REALTIME - CLOCK_MONOTONIC, last tick */
	/* The replay memory's file covers the spool up to replay_pos: the
	 * spool keeps what follows (release()). The sync thread saves it
	 * (save_replays()); the main loop reads these two. */
	_Atomic uint64_t replay_pos;
	_Atomic int replay_err;	  /* the last save's error, 0: none */
	_Atomic int replay_hurry; /* the disk is low: save every second */
	_Atomic int replay_force; /* save at the next wake (the file went) */
	_Atomic int replay_ready; /* restored: the sync thread may save */
	int64_t replay_saved_ms;  /* the sync thread's */
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
mono_ms(void)
{
	return mono_us() / 1000;
}

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Now for the rules: the wall clock for what they show and for the
 * calendar, the monotonic clock for every deadline (rules.h). */
static struct rules_clock
rules_now(void)
{
	return (struct rules_clock){ .wall_us = wall_us(), .mono_us = mono_us() };
}

/* Logs a step of the wall clock: the offset between CLOCK_REALTIME and
 * CLOCK_MONOTONIC changed by more than WALL_STEP_US since the last look
 * (every tick). NTP slews by at most 500 ppm, 50 us per tick: only a step
 * (settimeofday, NTP setting the clock, `date -s`) gets here. Timers do
 * not move with it: they run on the monotonic clock. */
#define WALL_STEP_US 1000000

static void
watch_wall_clock(struct daemon *d)
{
	struct rules_clock now = rules_now();
	int64_t offset = now.wall_us - now.mono_us;
	int64_t step = offset - d->wall_offset_us;

	if (d->wall_offset_us && (step > WALL_STEP_US || step < -WALL_STEP_US))
		log_warn("wall clock stepped %s by %lld s; deadlines keep running on the"
			 " monotonic clock, the times shown and stored follow the wall clock",
			 step > 0 ? "forward" : "back",
			 (long long)((step > 0 ? step : -step) + 500000) / 1000000);
	d->wall_offset_us = offset;
}

static void pump(struct daemon *d);
static void publish_transitions(struct daemon *d, int64_t received_us);

/* Normalizer callbacks: what the register says. */
static int
gate_info(void *arg, const char *site, const char *gate, struct norm_gate_info *ret)
{
	struct daemon *d = arg;
	const struct reg_gate *g = registry_gate(d->reg, site, gate);

	if (!g)
		return -ENOENT;
	ret->format = g->format;
	ret->unit = g->unit;
	return 0;
}

static int64_t
local_to_utc(void *arg, const char *site, int64_t naive_s)
{
	struct daemon *d = arg;

	return tz_local_to_utc(registry_site_tz(d->reg, site), naive_s);
}

/* Reads the ID hashing key; 0 or a negative errno. */
static int
load_id_key(struct daemon *d)
{
	uint8_t buf[1024];
	size_t n;
	FILE *f;

	if (!d->cfg->id_key_file[0]) {
		log_notice("no [site] id_key_file: national ID numbers are dropped, never stored");
		return 0;
	}
	f = fopen(d->cfg->id_key_file, "re");
	if (!f) {
		log_err("cannot read [site] id_key_file %s: %s", d->cfg->id_key_file,
			strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n < 16) {
		log_err("[site] id_key_file %s: the key must be at least 16 bytes",
			d->cfg->id_key_file);
		return -EINVAL;
	}
	d->id_key = malloc(n);
	if (!d->id_key)
		return -ENOMEM;
	memcpy(d->id_key, buf, n);
	d->id_key_len = n;
	return 0;
}

/* G3: the open alerts and last-seen times from PostgreSQL, so that timer
 * rules go on across a restart. Open alerts past max_open_alerts for a
 * site and kind (from before the bound, or a bound lowered meanwhile)
 * fold into the aggregate and are resolved, their retained state cleared.
 * The rows come typed (alert_state.h); the rules keep what the register
 * knows (rules_restore_seen). */
static void
restore_rule_state(struct daemon *d, const struct registry_snapshot *s)
{
	const struct registry_seed *seed = s->seed;
	struct rules_clock now = rules_now();
	size_t restored = 0, folded = 0, nseen = 0;

	for (size_t i = 0; i < seed->nalerts; i++) {
		const struct alert *a = &seed->alerts[i];
		int err = rules_restore_alert(d->rules, a, &now, &d->out);

		if (err == 0)
			restored++;
		else if (err == 1)
			folded++;
		else
			log_err("out of memory restoring alert %s", a->alert_id);
		if (d->out.n)
			publish_transitions(d, 0);
		/* Open before the restart: over after a quiet period from now. */
		if (err == 0 && a->kind == KIND_CLIENT_ID_CONFLICT &&
		    strncmp(a->subject, "instance:", 9) == 0 &&
		    strcmp(a->subject + 9, d->cfg->mqtt_client_id) == 0)
			d->conflict.active = 1;
	}
	for (size_t i = 0; i < seed->nseen; i++) {
		const struct alert_seen *x = &seed->seen[i];
		int err = rules_restore_seen(d->rules, s, x, &now);

		if (err != 1)
			nseen++;
		if (err < 0)
			log_warn("cannot restore %s %s/%s", alert_state_seen_name(x->what), x->site,
				 x->id);
	}
	if (folded)
		log_warn("%zu open alerts past [rules] max_open_alerts = %" PRId64 " for their site"
			 " and kind folded into aggregate alerts (resolved as \"folded\")",
			 folded, d->cfg->max_open_alerts);
	log_notice("rule state restored: %zu open alerts, %zu last-seen times", restored, nseen);
}

/* [site] timezone into snapshot `s`, for the sites without a zone of their
 * own (one loaded before a SIGHUP may still carry the old one). */
static void
apply_timezone(struct daemon *d, struct registry_snapshot *s)
{
	int err;

	if (strcmp(tz_name(s->default_tz), d->cfg->site_timezone) == 0)
		return;
	err = registry_snapshot_set_default_tz(s, d->cfg->site_timezone);
	if (err < 0)
		log_err("cannot load [site] timezone %s (%s); sites without a zone of their own"
			" keep %s",
			d->cfg->site_timezone, strerror(-err), tz_name(s->default_tz));
}

static void
take_register(struct daemon *d)
{
	struct registry_snapshot *s = registry_take(d->registry);

	if (!s)
		return;
	apply_timezone(d, s);
	if (s->seed) {
		restore_rule_state(d, s);
		d->rules_ready = 1;
		/* More open alerts than one pass loads: the next pass once
		 * this one's folded alerts are resolved in PostgreSQL (and
		 * their messages handed on: next_restore_pass). */
		if (s->seed->more)
			d->reseed_batch = d->filling;
	}
	registry_snapshot_free(d->reg);
	/* The old snapshot's blocks not shared with the new one were the
	 * register thread's: give their pages back (glibc keeps freed memory
	 * of another thread's arena otherwise; a full reload would leave the
	 * process at twice the register). */
	malloc_trim(0);
	d->reg = s;
	d->reg_bytes = registry_snapshot_bytes(s);
	pump(d);
}

static void
apply_config(struct daemon *d)
{
	log_set_level((enum log_level)d->cfg->log_level);
	d->nctx.topic_root = d->cfg->topic_root;
	d->nctx.max_clock_skew_us = d->cfg->max_clock_skew * 1000;
	d->nctx.tz_offset_s = 0; /* unused: local_to_utc knows each site's zone */
	d->nctx.local_to_utc = local_to_utc;
	d->nctx.gate_info = gate_info;
	d->nctx.arg = d;
	d->nctx.id_key = d->id_key;
	d->nctx.id_key_len = d->id_key_len;
	d->rcfg = (struct rules_config){
		.fever_dc = (int16_t)(d->cfg->fever_c * 10.0 + 0.5),
		.critical_dc = (int16_t)(d->cfg->critical_c * 10.0 + 0.5),
		.recheck_window_us = d->cfg->recheck_window * 1000,
		.check_interval_us = d->cfg->check_interval * 1000,
		.check_grace_us = d->cfg->check_grace * 1000,
		.silence_timeout_us = d->cfg->silence_timeout * 1000,
		.exit_quota = d->cfg->exit_quota,
		.exit_window_us = d->cfg->exit_window * 1000,
		.disinfection_interval_us = d->cfg->disinfection_interval * 1000,
		.hotline_medical_us = d->cfg->hotline_medical_limit * 1000,
		.hotline_other_us = d->cfg->hotline_other_limit * 1000,
		.repeat_interval_us = d->cfg->repeat_interval * 1000,
		.max_open_alerts = d->cfg->max_open_alerts,
	};
	if (d->rules)
		rules_set_config(d->rules, &d->rcfg);
	d->batch_rows = (size_t)d->cfg->pg_batch_rows;
}

/* Intake pauses early enough that what the broker has already sent us
 * (MQTT_CLIENT_RECEIVE_MAXIMUM messages) still fits under max_bytes, and
 * resumes once PostgreSQL has caught up by as much again. Segments are
 * kept small against max_bytes so that releasing them can get there. */
static void
spool_limits(const struct config *cfg, int64_t *ret_segment, uint64_t *ret_pause,
	     uint64_t *ret_resume)
{
	uint64_t max = (uint64_t)cfg->spool_max_bytes;
	uint64_t headroom =
		(uint64_t)MQTT_CLIENT_RECEIVE_MAXIMUM * ((uint64_t)cfg->max_payload + 512);

	if (headroom > max / 4)
		headroom = max / 4;
	*ret_pause = max - headroom;
	*ret_resume = max - 2 * headroom;
	*ret_segment = cfg->spool_segment_bytes;
	if ((uint64_t)*ret_segment > max / 8)
		*ret_segment = (int64_t)(max / 8);
	/* The spool keeps each segment file open (a deleted one still
	 * reads): at most about 512 of them, well within the usual limit of
	 * 1,024 open files. */
	if ((uint64_t)*ret_segment < max / 512)
		*ret_segment = (int64_t)(max / 512);
}

/* Free bytes on the spool's file system for us (f_bavail), and sets
 * d->disk_reserve: what the messages already on their way to us may need
 * (the pause's headroom), but at most a quarter of the file system, so that
 * a disk smaller than that still takes messages. Looked at most every
 * millisecond. Returns UINT64_MAX when the file system does not say. */
static uint64_t
disk_free(struct daemon *d)
{
	int64_t now = mono_us();
	struct statvfs sv;

	if (now - d->disk_checked_us < 1000 && d->disk_checked_us)
		return d->disk_free;
	d->disk_checked_us = now;
	if (statvfs(d->cfg->spool_dir, &sv) < 0 || sv.f_blocks == 0) {
		d->disk_free = UINT64_MAX;
		return d->disk_free;
	}
	d->disk_reserve =
		(uint64_t)MQTT_CLIENT_RECEIVE_MAXIMUM * ((uint64_t)d->cfg->max_payload + 512);
	if (d->disk_reserve > (uint64_t)sv.f_blocks * sv.f_frsize / 4)
		d->disk_reserve = (uint64_t)sv.f_blocks * sv.f_frsize / 4;
	d->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	return d->disk_free;
}

/* Pauses intake before the spool reaches max_bytes or its disk fills up
 * (the receive callback would then have to wait inside Paho, holding its
 * lock, and no alert could go out), and resumes once PostgreSQL has caught
 * up and committed segments are deleted: when twice the reserve is free,
 * or the reserve with nothing left to commit (on a disk that something
 * else fills, twice may never come back). */
static void
check_spool_space(struct daemon *d)
{
	uint64_t used = spool_bytes(d->spool);
	uint64_t avail = disk_free(d);
	int low = avail < d->disk_reserve;

	if (!d->paused && !d->stopping && (used >= d->pause_at || low)) {
		if (low)
			log_warn("the spool's disk has %" PRIu64 " bytes free (below %" PRIu64 "):"
				 " pausing intake from the broker (it keeps our messages) until"
				 " PostgreSQL catches up and committed spool space is freed",
				 avail, d->disk_reserve);
		else
			log_warn("spool holds %" PRIu64 " of %" PRIu64
				 " bytes: pausing intake from the"
				 " broker (it keeps our messages) until PostgreSQL catches up",
				 used, (uint64_t)d->cfg->spool_max_bytes);
		mqtt_client_pause(d->mqtt);
		d->paused = 1;
		d->disk_low = low;
		atomic_store(&d->replay_hurry, low);
		spool_set_low_disk(d->spool, low);
	} else if (d->paused && !d->stopping && used <= d->resume_at &&
		   (avail >= 2 * d->disk_reserve ||
		    (avail >= d->disk_reserve && spool_pending(d->spool, d->committed) == 0))) {
		log_notice("spool down to %" PRIu64 " bytes, %" PRIu64 " bytes free on its disk:"
			   " resuming intake",
			   used, avail);
		mqtt_client_resume(d->mqtt);
		d->paused = 0;
		d->disk_low = 0;
		atomic_store(&d->replay_hurry, 0);
		spool_set_low_disk(d->spool, 0);
	}
}

static const char *const transition_names[4] = { "raised", "updated", "acked", "resolved" };

static int
transition_index(const char *what)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(what, transition_names[i]) == 0)
			return i;
	return 3;
}

/* Publishes the transitions in d->out (QoS 1 on alert/<kind>, and the
 * retained current state on alerts/<id>, cleared on resolve), adds them to
 * the batch for PostgreSQL, and sends an ack's reject notice. */
static void
publish_transitions(struct daemon *d, int64_t received_us)
{
	for (size_t i = 0; i < d->out.n; i++) {
		const struct alert_transition *t = &d->out.t[i];
		const struct alert *a = &t->a;
		char topic[512];
		char *json = alerts_render(t, d->reg);

		if (!json) {
			log_err("out of memory rendering alert %s", a->alert_id);
			continue;
		}
		alerts_topic(d->cfg->topic_root, a, topic, sizeof(topic));
		if (mqtt_client_publish(d->mqtt, topic, json, strlen(json), 1, 0) < 0)
			log_limited(&d->publish_rl, LOG_LEVEL_ERR, "cannot queue alert %s on %s",
				    a->alert_id, topic);
		alerts_state_topic(d->cfg->topic_root, a, topic, sizeof(topic));
		if (mqtt_client_publish(d->mqtt, topic, json,
					a->state == ALERT_RESOLVED ? 0 : strlen(json), 1, 1) < 0)
			log_limited(&d->publish_rl, LOG_LEVEL_ERR,
				    "cannot queue the state of alert %s", a->alert_id);
		log_notice("alert %s %s (%s, %s, count %u) %s", rules_kind_name(a->kind), t->what,
			   rules_severity_name(a->severity), a->subject, a->count, a->alert_id);
		d->count.transitions[a->kind][transition_index(t->what)]++;
		if (a->kind == KIND_FEVER && received_us && transition_index(t->what) <= 1)
			histogram_observe(&d->count.fever_latency,
					  (double)(wall_us() - received_us) / 1e6);
		if (store_batch_add_alert(d->filling, t) < 0)
			log_err("out of memory: alert %s %s is published but not stored",
				a->alert_id, t->what);
		d->count.alerts++;
		free(json);
	}
	if (d->out.reject_reason[0]) {
		char topic[256];
		char ack_topic[256];
		char *json;

		snprintf(ack_topic, sizeof(ack_topic), "%s/%s/ack", d->cfg->topic_root,
			 d->out.reject_site);
		json = alerts_reject_notice(ack_topic, strlen(ack_topic), "unknown_alert",
					    d->out.reject_reason, "", 0);
		snprintf(topic, sizeof(topic), "%s/%s/reject", d->cfg->topic_root,
			 d->out.reject_site);
		if (json && mqtt_client_publish(d->mqtt, topic, json, strlen(json), 0, 0) < 0)
			log_limited(&d->publish_rl, LOG_LEVEL_WARNING, "cannot publish on %s",
				    topic);
		log_limited(&d->reject_rl, LOG_LEVEL_WARNING, "ack refused on site %s: %s",
			    d->out.reject_site, d->out.reject_reason);
		free(json);
	}
	rules_output_clear(&d->out);
}

static void
reject_notice(struct daemon *d, const struct spool_record *rec, const struct norm_result *res)
{
	char topic[256];
	char *json;

	if (!res->site[0])
		return; /* no site to tell */
	json = alerts_reject_notice(rec->topic, rec->topic_len, res->reason, res->detail,
				    rec->payload, rec->payload_len);
	snprintf(topic, sizeof(topic), "%s/%s/reject", d->cfg->topic_root, res->site);
	if (json && mqtt_client_publish(d->mqtt, topic, json, strlen(json), 0, 0) < 0)
		log_limited(&d->publish_rl, LOG_LEVEL_WARNING, "cannot publish on %s", topic);
	free(json);
}

/* Counts a reject by reason (the rules cursor: once per record). */
static void
count_reject(struct daemon *d, const char *reason)
{
	void *n = map_get(&d->count.reject_reasons, reason);

	if (map_put(&d->count.reject_reasons, reason, (void *)((intptr_t)n + 1), NULL) < 0)
		log_err("out of memory counting rejects");
	d->count.rejects++;
}

/* A damaged span of the spool (the spool logged it): one reject, reason
 * spool_corrupt, keyed by the spool and the span's position so that a
 * replay lands on the same row; its first bytes are the payload. Returns
 * 0 or -ENOMEM. */
static int
process_damaged(struct daemon *d, const struct spool_record *rec, int rules,
		struct store_batch *batch)
{
	struct store_reject r = { .received_us = wall_us(),
				  .reason = "spool_corrupt",
				  .orig_len = rec->orig_len };

	if (rules)
		count_reject(d, r.reason);
	if (!batch)
		return 0;
	snprintf(r.key, sizeof(r.key), "spool:%s:%" PRIu64, spool_id(d->spool), rec->pos);
	snprintf(r.detail, sizeof(r.detail),
		 "spool position %" PRIu64 ": %" PRIu32
		 " damaged bytes, the record(s) in them lost (first %zu bytes kept)",
		 rec->pos, rec->orig_len, rec->payload_len);
	return store_batch_add_reject(batch, &r, "", 0, rec->payload, rec->payload_len);
}

/* Normalizes one record. With `rules`, runs the rules on its events; with
 * `batch`, adds its events or its reject to that batch. */
static int
process_record(struct daemon *d, const struct spool_record *rec, int rules,
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
		return process_damaged(d, rec, rules, batch);
	/* An empty retained publication deletes a topic's retained message
	 * (MQTT 5.0 3.3.1.3): broker housekeeping, not a device's data. It
	 * is in the spool for the replay memory (replay.h) and counted. */
	if ((rec->flags & SPOOL_RETAINED) && rec->orig_len == 0) {
		if (rules)
			d->count.retained_cleared++;
		return 0;
	}
	err = normalize_message(&d->nctx, &in, d->events, NORM_MAX_EVENTS, &res);
	if (err < 0)
		return err;
	if (res.reason) {
		if (rules) {
			count_reject(d, res.reason);
			d->count.by_type[0]++;
			log_limited(&d->reject_rl, LOG_LEVEL_WARNING,
				    "rejected message on %.*s: %s (%s)",
				    (int)(rec->topic_len > 200 ? 200 : rec->topic_len), rec->topic,
				    res.reason, res.detail);
			reject_notice(d, rec, &res);
		}
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
		tables_content_hash(&d->events[i], d->events[i].content_hash);
		if (rules) {
			struct rules_clock now = rules_now();

			d->count.events++;
			d->count.by_type[d->events[i].type]++;
			if (rules_event(d->rules, d->reg, &d->events[i], &now, &d->out) < 0)
				log_err("out of memory in the rules: event %s not checked",
					d->events[i].key);
			publish_transitions(d, rec->recv_us);
		}
		if (batch) {
			err = store_batch_add_event(batch, &d->events[i]);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

static int
batch_has_room(struct daemon *d)
{
	return store_batch_rows(d->filling) < d->batch_rows;
}

/* Reads every new record with the rules cursor. */
static void
run_rules(struct daemon *d)
{
	struct spool_record rec;
	int rc;

	if (!d->rules_ready)
		return;
	while ((rc = spool_reader_next(d->rules_rd, &rec)) == 1) {
		int joined = d->store_pos == rec.pos && batch_has_room(d);

		d->nrecords++;
		if (process_record(d, &rec, 1, joined ? d->filling : NULL) < 0) {
			log_err("out of memory processing the spool; retrying");
			spool_reader_seek(d->rules_rd, rec.pos);
			return;
		}
		if (joined) {
			d->store_pos = rec.next;
			d->filling->end_pos = rec.next;
		}
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
}

/* Lets the store cursor catch up with the rules cursor while the batch
 * being filled has room. */
static void
catch_up(struct daemon *d)
{
	uint64_t target = spool_reader_pos(d->rules_rd);
	struct spool_record rec;
	int rc = 0;

	if (d->store_pos >= target)
		return;
	spool_reader_seek(d->store_rd, d->store_pos);
	while (d->store_pos < target && batch_has_room(d) &&
	       (rc = spool_reader_next(d->store_rd, &rec)) == 1) {
		if (process_record(d, &rec, 0, d->filling) < 0) {
			log_err("out of memory processing the spool; retrying");
			return;
		}
		d->store_pos = rec.next;
		d->filling->end_pos = rec.next;
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
	else if (rc == 0 && spool_reader_pos(d->store_rd) > d->store_pos &&
		 spool_reader_pos(d->store_rd) <= target)
		/* The reader stepped over a gap left by a cut tail (no data
		 * there): the checkpoint passes it too. */
		d->store_pos = d->filling->end_pos = spool_reader_pos(d->store_rd);
}

/* Hands the filling batch to the store when the store is idle. */
static void
flush(struct daemon *d)
{
	struct store_batch *b = d->filling;

	if (b->end_pos <= d->committed && store_batch_rows(b) == 0)
		return;
	if (b->end_pos < d->committed)
		b->end_pos = d->committed; /* only alerts from the timers */
	if (store_submit(d->store, b) < 0)
		return;
	d->filling = b == d->batches[0] ? d->batches[1] : d->batches[0];
	store_batch_clear(d->filling);
}

/* Deletes the spool segments wholly before the committed position, and
 * before what the replay memory's file covers (mqtt_client_save_replays()),
 * unless its last save failed: a full disk must not keep the spool from
 * freeing what PostgreSQL has (a restart after that rebuilds the memory
 * from what the spool still holds, and says so). */
static void
release(struct daemon *d)
{
	uint64_t pos = d->committed, saved = atomic_load(&d->replay_pos);

	if (!atomic_load(&d->replay_err) && saved < pos)
		pos = saved;
	spool_release(d->spool, pos);
}

/* Saves the replay memory every REPLAY_SAVE_MS, every second while the
 * spool's disk is low (its release waits for the save), or now (force).
 * From the sync thread (writing up to 20 MiB and a sync would hold up the
 * alerts in the main loop), and before it starts and after it stops. */
#define REPLAY_SAVE_MS 10000

static void
save_replays(struct daemon *d, int64_t now_ms, int force)
{
	uint64_t pos;
	int err;

	if (atomic_exchange(&d->replay_force, 0))
		force = 1;
	if (!force &&
	    now_ms - d->replay_saved_ms < (atomic_load(&d->replay_hurry) ? 1000 : REPLAY_SAVE_MS))
		return;
	err = mqtt_client_save_replays(d->mqtt, &pos);
	d->replay_saved_ms = now_ms;
	if (err < 0) {
		if (err != atomic_load(&d->replay_err) && spool_check_dir(d->spool) == SPOOL_DIR_OK)
			log_warn(
				"cannot save the replay memory in the spool directory: %s; until"
				" a save succeeds, a restart may judge a retained message again once",
				strerror(-err));
		atomic_store(&d->replay_err, err);
		return;
	}
	if (atomic_load(&d->replay_err))
		log_notice("replay memory saved again");
	atomic_store(&d->replay_pos, pos);
	atomic_store(&d->replay_err, 0);
}

static void
on_committed(struct daemon *d)
{
	struct store_batch *b = store_take_done(d->store);
	int err;

	if (!b)
		return;
	if (b == d->reseed_batch) {
		d->reseed_batch = NULL;
		d->reseed_due = 1;
	}
	if (b->end_pos > d->committed)
		d->committed = b->end_pos;
	store_batch_clear(b);
	err = spool_save_checkpoint(d->spool, d->committed);
	if (err < 0 && spool_check_dir(d->spool) == SPOOL_DIR_OK)
		log_warn("cannot save the local checkpoint: %s", strerror(-err));
	release(d);
}

static void
pump(struct daemon *d)
{
	on_committed(d);
	run_rules(d);
	catch_up(d);
	flush(d);
}

/* Wake moderation, as network drivers do it. At a low rate the receive
 * thread wakes the loop for each message, which the rules then see at
 * once. In a stream (two messages within SPOOL_STREAM_US, or a poll that
 * finds two or more) the loop stops asking to be woken and polls the spool
 * every SPOOL_POLL_MS instead: a wake-up and a context switch per message
 * cost cordond 8 % of its CPU at 9,000 messages/s; a message then waits at
 * most SPOOL_POLL_MS. A poll that finds fewer than two ends the stream. */
#define SPOOL_POLL_MS 1
#define SPOOL_STREAM_US 500

static void
on_spool(struct daemon *d, int woken)
{
	uint64_t before = d->nrecords;
	int64_t now = mono_us();
	int stream;

	pump(d);
	/* Pause intake within a poll, not a tick, of crossing the mark: the
	 * receive thread must never reach the spool's hard limit, where it
	 * would wait for space inside Paho's callback, holding Paho's lock. */
	check_spool_space(d);
	if (woken) {
		stream = now - d->last_wake_us < SPOOL_STREAM_US;
		d->last_wake_us = now;
	} else {
		stream = d->nrecords - before >= 2;
	}
	d->polling = stream;
	if (stream)
		return;
	mqtt_client_want_wake(d->mqtt);
	/* A message appended just before we asked wrote no eventfd. (Until
	 * the rules are ready their cursor stays put: the register's arrival
	 * pumps what came meanwhile.) */
	if (d->rules_ready && spool_end(d->spool) != spool_reader_pos(d->rules_rd))
		d->polling = 1;
}

static void
log_stats(struct daemon *d)
{
	struct mqtt_client_stats is;
	struct store_stats ss;

	mqtt_client_get_stats(d->mqtt, &is);
	store_get_stats(d->store, &ss);
	log_info("stats: received %" PRIu64 ", events %" PRIu64 ", rejects %" PRIu64
		 ", alerts %" PRIu64 ", wrote %" PRIu64 " rows in %" PRIu64
		 " batches, backlog %" PRIu64 " bytes, broker %s, PostgreSQL %s",
		 is.received, d->count.events, d->count.rejects, d->count.alerts,
		 ss.events_written + ss.rejects_written, ss.batches,
		 spool_pending(d->spool, d->committed), is.connected ? "up" : "down",
		 store_stats_db_text(&ss));
}

/* backlog: the spool directory deleted or replaced, or the spool not
 * writable; PostgreSQL unreachable, or refusing our writes (a held batch),
 * for over 60 s; or the spool over 80 % of max_bytes. */
static void
check_backlog(struct daemon *d, int64_t now)
{
	uint64_t used = spool_bytes(d->spool);
	struct rules_clock rnow;
	struct store_stats ss;
	char why[64] = "";

	store_get_stats(d->store, &ss);
	if (ss.db_up && !ss.writes_held)
		d->db_down_since_ms = 0;
	else if (d->db_down_since_ms == 0)
		d->db_down_since_ms = now;
	/* The alert's reason holds 31 characters: the SQLSTATE says which
	 * refusal; the log line and /metrics carry the message. */
	if (d->dir_state != SPOOL_DIR_OK)
		snprintf(why, sizeof(why), "spool directory %s",
			 d->dir_state == SPOOL_DIR_DELETED ? "deleted" : "replaced");
	else if (d->write_err)
		snprintf(why, sizeof(why), "spool not writable");
	else if (d->db_down_since_ms && now - d->db_down_since_ms > 60000 && ss.writes_held)
		snprintf(why, sizeof(why), "PostgreSQL refuses writes %.5s", ss.held_sqlstate);
	else if (d->db_down_since_ms && now - d->db_down_since_ms > 60000)
		snprintf(why, sizeof(why), "PostgreSQL unreachable for %lld s",
			 (long long)(now - d->db_down_since_ms) / 1000);
	else if (used * 5 > (uint64_t)d->cfg->spool_max_bytes * 4)
		snprintf(why, sizeof(why), "spool over 80%% full");
	rnow = rules_now();
	if (rules_backlog(d->rules, d->cfg->mqtt_client_id, why[0] != '\0', why, &rnow, &d->out) <
	    0)
		log_err("out of memory in the backlog rule");
}

/* client_id_conflict: MQTT_CONFLICT_COUNT takeovers of our client id
 * within MQTT_CONFLICT_WINDOW_MS, seen as the broker's DISCONNECT 0x8E or,
 * from a broker that gives no reason (Mosquitto before 2.0.15), as quiet
 * drops; resolved after MQTT_CONFLICT_QUIET_MS without one. */
static void
check_conflict(struct daemon *d, const struct mqtt_client_stats *is, int64_t now)
{
	uint64_t seen = is->taken_over + is->quiet_drops;
	struct rules_clock rnow;
	char why[32];
	int trouble;

	trouble = mqtt_conflict_update(&d->conflict, (unsigned)(seen - d->conflict_seen), now);
	d->conflict_seen = seen;
	snprintf(why, sizeof(why),
		 is->taken_over ? "session taken over %u times" : "%u drops without a reason",
		 mqtt_conflict_recent(&d->conflict, now));
	rnow = rules_now();
	if (rules_client_id_conflict(d->rules, d->cfg->mqtt_client_id, trouble, why, &rnow,
				     &d->out) < 0)
		log_err("out of memory in the client_id_conflict rule");
}

/* Renders the Prometheus text and hands it to the HTTP thread. */
static void
render_metrics(struct daemon *d, const struct mqtt_client_stats *is, const struct store_stats *ss)
{
	char *text = NULL;
	size_t len = 0;
	const char *key;
	void *v;
	FILE *f;
	uint64_t used = spool_bytes(d->spool);
	enum spool_dir_state ds = spool_check_dir(d->spool);
	int werr = spool_write_error(d->spool);
	struct spool_stats sps;
	/* The spool first: while it takes nothing, the receive callback waits
	 * inside Paho and the broker soon drops us too. */
	const char *why = ds == SPOOL_DIR_DELETED ? "spool directory deleted" :
		ds == SPOOL_DIR_REPLACED	  ? "spool directory replaced" :
		werr || is->spool_failing	  ? "spool not writable" :
		d->disk_low			  ? "spool disk full: intake paused" :
		!is->connected			  ? "broker not connected" :
						    "";
	char sub_why[384];

	if (!why[0] && is->subs_refused) {
		snprintf(sub_why, sizeof(sub_why), "subscription refused: %s", is->sub_refused);
		why = sub_why;
	}

	if (!d->metrics)
		return;
	f = open_memstream(&text, &len);
	if (!f)
		return;
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
		(unsigned long long)d->count.retained_cleared);
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
		(unsigned long long)d->count.by_type[0]);
	for (int t = 1; t <= EVENT_TYPES; t++)
		fprintf(f, "cordon_messages_total{type=\"%s\"} %llu\n",
			normalize_type_name((enum event_type)t),
			(unsigned long long)d->count.by_type[t]);
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
	for (size_t it = 0; map_next(&d->count.reject_reasons, &it, &key, &v);)
		fprintf(f, "cordon_rejects_total{reason=\"%s\"} %llu\n", key,
			(unsigned long long)(intptr_t)v);
	fprintf(f,
		"# HELP cordon_alert_transitions_total Alert transitions, by kind and transition.\n"
		"# TYPE cordon_alert_transitions_total counter\n");
	for (int k = 0; k < KIND_COUNT; k++)
		for (int w = 0; w < 4; w++)
			fprintf(f,
				"cordon_alert_transitions_total{kind=\"%s\",transition=\"%s\"} %llu\n",
				rules_kind_name((enum alert_kind)k), transition_names[w],
				(unsigned long long)d->count.transitions[k][w]);
	fprintf(f,
		"# HELP cordon_spool_bytes Bytes in the spool.\n# TYPE cordon_spool_bytes gauge\n"
		"cordon_spool_bytes %llu\n",
		(unsigned long long)used);
	fprintf(f,
		"# HELP cordon_spool_backlog_bytes Spool bytes not yet in PostgreSQL.\n"
		"# TYPE cordon_spool_backlog_bytes gauge\ncordon_spool_backlog_bytes %llu\n",
		(unsigned long long)spool_pending(d->spool, d->committed));
	spool_get_stats(d->spool, &sps);
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
		(unsigned long long)(d->disk_free == UINT64_MAX ? 0 : d->disk_free));
	fprintf(f,
		"# HELP cordon_intake_paused 1 while intake is paused (spool full).\n"
		"# TYPE cordon_intake_paused gauge\ncordon_intake_paused %d\n",
		d->paused);
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
		d->reg->ncards, d->reg->nhouseholds, d->reg_bytes, d->reg->load_seconds);
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
	for (int i = 0; i < mqtt_client_filter_count(d->mqtt); i++) {
		int code;
		const char *filter = mqtt_client_filter(d->mqtt, i, &code);

		fprintf(f, "cordon_mqtt_subscription_reason_code{filter=\"%s\"} %d\n", filter,
			code);
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
	histogram_print(&d->count.fever_latency, "cordon_fever_alert_latency_seconds", NULL, f);
	fclose(f);
	metrics_publish(d->metrics, text, len, why[0] == '\0', why);
	free(text);
}

/* READY=1 once the broker is connected (the spool is open by then),
 * WATCHDOG=1 at half the interval, STATUS= every 2 s, metrics. */
static void
service_tick(struct daemon *d, int64_t now)
{
	struct mqtt_client_stats is;
	struct store_stats ss;

	mqtt_client_get_stats(d->mqtt, &is);
	/* Connected means subscribed too: the SUBACK has come. */
	if (!d->ready_sent && ((is.connected && !is.subs_pending) || d->paused)) {
		notify_ready();
		d->ready_sent = 1;
		if (d->paused)
			log_notice("ready: spool open, intake paused");
		else if (is.subs_refused)
			log_err("ready, but not whole: subscription refused: %s", is.sub_refused);
		else
			log_notice("ready: broker connected and subscribed, spool open");
	}
	if (d->watchdog_ms && now - d->last_watchdog_ms >= d->watchdog_ms / 2) {
		notify_watchdog();
		d->last_watchdog_ms = now;
	}
	if (now - d->last_status_ms < 2000)
		return;
	store_get_stats(d->store, &ss);
	notify_status("%.0f msg/s in, broker %s, PostgreSQL %s, backlog %llu bytes%s%s%s",
		      (double)(is.received - d->last_received) * 1000.0 /
			      (double)(now - d->last_status_ms),
		      is.connected ? "up" : "down", store_stats_db_text(&ss),
		      (unsigned long long)spool_pending(d->spool, d->committed),
		      d->dir_state != SPOOL_DIR_OK ? ", spool directory gone: intake stopped" :
			      d->write_err	   ? ", spool not writable: intake stopped" :
			      d->disk_low	   ? ", intake paused (spool disk full)" :
			      d->paused		   ? ", intake paused (spool full)" :
						     "",
		      is.connected && is.subs_refused ? ", subscription refused: " : "",
		      is.connected && is.subs_refused ? is.sub_refused : "");
	d->last_received = is.received;
	d->last_status_ms = now;
	render_metrics(d, &is, &ss);
}

/* `[spool] sync = interval`: a thread of its own fdatasyncs the spool
 * every sync_interval. A sync takes milliseconds on a busy disk; in the
 * main loop it would hold up the alerts behind it. The same thread saves
 * the replay memory (save_replays()), whatever the sync mode. */
static void *
sync_main(void *arg)
{
	struct daemon *d = arg;

	pthread_mutex_lock(&d->sync_lock);
	while (!d->sync_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += d->sync_interval_ms / 1000;
		ts.tv_nsec += d->sync_interval_ms % 1000 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&d->sync_cond, &d->sync_lock, &ts);
		if (!d->sync_stop && d->sync_mode == SPOOL_SYNC_INTERVAL) {
			int err;

			pthread_mutex_unlock(&d->sync_lock);
			err = spool_sync(d->spool);
			if (err < 0)
				log_err("spool fdatasync failed: %s", strerror(-err));
			if (atomic_load(&d->replay_ready) &&
			    (err = mqtt_client_sync_replays(d->mqtt)) < 0)
				log_err("msync of the packet identifier table failed: %s",
					strerror(-err));
			pthread_mutex_lock(&d->sync_lock);
		}
		if (!d->sync_stop && atomic_load(&d->replay_ready)) {
			pthread_mutex_unlock(&d->sync_lock);
			save_replays(d, mono_ms(), 0);
			pthread_mutex_lock(&d->sync_lock);
		}
	}
	pthread_mutex_unlock(&d->sync_lock);
	return NULL;
}

/* Sets the sync thread's mode and interval (at start and on SIGHUP). */
static void
sync_configure(struct daemon *d)
{
	pthread_mutex_lock(&d->sync_lock);
	d->sync_mode = d->cfg->spool_sync;
	d->sync_interval_ms = d->cfg->spool_sync_interval; /* at least 1 (config.c) */
	pthread_cond_signal(&d->sync_cond);
	pthread_mutex_unlock(&d->sync_lock);
}

static int
sync_start(struct daemon *d)
{
	pthread_condattr_t attr;
	int err;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->sync_cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&d->sync_lock, NULL);
	sync_configure(d);
	err = pthread_create(&d->sync_thread, NULL, sync_main, d);
	if (err != 0)
		return -err;
	d->sync_started = 1;
	return 0;
}

static void
sync_stop(struct daemon *d)
{
	if (!d->sync_started)
		return;
	pthread_mutex_lock(&d->sync_lock);
	d->sync_stop = 1;
	pthread_cond_signal(&d->sync_cond);
	pthread_mutex_unlock(&d->sync_lock);
	pthread_join(d->sync_thread, NULL);
	d->sync_started = 0;
	pthread_cond_destroy(&d->sync_cond);
	pthread_mutex_destroy(&d->sync_lock);
}

/* The spool's health, each tick: the directory still the one we opened,
 * appends working (each logged once per change of state); committed
 * space freed (the last commit may have come before the disk filled);
 * after the directory was deleted or replaced, once everything still
 * readable through the open files is committed, the directory made again
 * (same spool id, positions going on), so that intake resumes. */
static void
watch_spool(struct daemon *d)
{
	enum spool_dir_state ds = spool_check_dir(d->spool);
	int werr = spool_write_error(d->spool);

	if (ds != d->dir_state && ds != SPOOL_DIR_OK)
		log_err("spool directory %s %s while cordond runs: no message is acknowledged until"
			" it is back (the broker keeps them); the %" PRIu64 " bytes not yet in"
			" PostgreSQL are read from the files still open and go there, but are lost"
			" if cordond stops first",
			d->cfg->spool_dir,
			ds == SPOOL_DIR_DELETED ? "was deleted" :
						  "now names another directory (remounted?)",
			spool_pending(d->spool, d->committed));
	d->dir_state = ds;
	if (werr != d->write_err) {
		if (werr)
			log_err("spool not writable: %s; no message is acknowledged (the broker keeps"
				" them) until an append succeeds; committed segments are deleted to"
				" make room",
				strerror(-werr));
		else
			log_notice("spool writable again: intake resumes");
		d->write_err = werr;
	}
	release(d);
	if (ds != SPOOL_DIR_OK && spool_pending(d->spool, d->committed) == 0) {
		int err = spool_recreate(d->spool, d->committed);

		if (err == 0) {
			atomic_store(&d->replay_force, 1); /* the file went with the directory */
			log_notice("spool directory %s made again (spool %s, positions go on from"
				   " %" PRIu64
				   "): everything before is in PostgreSQL; intake resumes",
				   d->cfg->spool_dir, spool_id(d->spool), spool_end(d->spool));
			d->dir_state = SPOOL_DIR_OK;
			d->recreate_err = 0;
		} else if (err != d->recreate_err) {
			log_err("cannot make the spool directory %s again: %s; trying again",
				d->cfg->spool_dir,
				err == -EEXIST ?
					"another spool is there (empty the directory, or restart cordond to"
					" take that spool)" :
					strerror(-err));
			d->recreate_err = err;
		}
	}
}

/* The next pass of the restore (take_register) once this one's folded
 * alerts are committed and their messages handed to Paho: each pass
 * queues two messages per alert it folds, and a queue that overflowed
 * would drop the zero-length retained messages that clear their state. */
static void
next_restore_pass(struct daemon *d)
{
	struct mqtt_client_stats is;

	if (!d->reseed_due)
		return;
	mqtt_client_get_stats(d->mqtt, &is);
	if (is.out_queued >= RESTORE_FOLD_STEP)
		return;
	d->reseed_due = 0;
	registry_reseed(d->registry);
}

static void
on_tick(struct daemon *d)
{
	int64_t now = mono_ms();

	mqtt_client_tick(d->mqtt, now);
	watch_wall_clock(d);
	next_restore_pass(d);
	watch_spool(d);
	check_spool_space(d);
	service_tick(d, now);
	if (now - d->last_stats_ms >= STATS_INTERVAL_MS) {
		log_stats(d);
		d->last_stats_ms = now;
	}
	if (!d->rules_ready && now - d->started_ms >= RULE_STATE_WAIT_MS) {
		log_warn("rule state not loaded from PostgreSQL within %d s: starting the rules"
			 " without it (it is merged in when PostgreSQL answers)",
			 RULE_STATE_WAIT_MS / 1000);
		d->rules_ready = 1;
	}
	if (d->rules_ready && now - d->last_rules_tick_ms >= 1000) {
		struct mqtt_client_stats is;
		struct rules_clock rnow = rules_now();

		mqtt_client_get_stats(d->mqtt, &is);
		rules_intake(d->rules, is.connected && !d->paused, &rnow);
		check_backlog(d, now);
		check_conflict(d, &is, now);
		rnow = rules_now();
		if (rules_tick(d->rules, d->reg, &rnow, &d->out) < 0)
			log_err("out of memory in the timer rules");
		publish_transitions(d, 0);
		d->last_rules_tick_ms = now;
	}
	pump(d);
}

/* Logs each line of a memstream's text at `level`. */
static void
log_lines(enum log_level level, const char *prefix, char *text)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		log_msg(level, "%s%s", prefix, line);
}

/* SIGHUP: reads the configuration again. A valid one is applied (keys
 * that need a restart keep their running value, and the log says so); an
 * invalid one is refused whole, with every reason logged. Nothing here
 * touches the MQTT session or the spool's contents. */
static void
reload(struct daemon *d)
{
	struct config next;
	char *errs = NULL;
	size_t len = 0;
	FILE *e;
	int rc;

	notify_reloading();
	log_notice("SIGHUP: reloading %s", d->config_path);
	e = open_memstream(&errs, &len);
	if (!e || config_init(&next) < 0) {
		log_err("reload: out of memory; keeping the current configuration");
		if (e)
			fclose(e);
		free(errs);
		notify_ready();
		return;
	}
	rc = config_load(&next, d->config_path, e);
	if (rc == 0)
		config_keep_restart_keys(&next, d->cfg, e);
	fclose(e);
	if (rc < 0) {
		log_lines(LOG_LEVEL_ERR, "reload refused: ", errs);
		log_err("reload refused: keeping the current configuration");
		config_finish(&next);
	} else {
		log_lines(LOG_LEVEL_WARNING, "reload: ", errs);
		config_finish(d->cfg);
		*d->cfg = next;
		apply_config(d);
		if (strcmp(tz_name(d->reg->default_tz), d->cfg->site_timezone) != 0) {
			if (registry_set_default_tz(d->registry, d->cfg->site_timezone) < 0)
				log_err("reload: out of memory; register reloads keep the old [site] timezone");
			apply_timezone(d, d->reg);
			log_notice("sites without a time zone of their own now use %s",
				   tz_name(d->reg->default_tz));
		}
		/* Segments keep the size they got at the start: a max_bytes
		 * beyond 512 of them would open more files than the limit
		 * allows (EMFILE) before the spool is full. */
		if ((uint64_t)d->cfg->spool_max_bytes > 512 * (uint64_t)d->segment_bytes) {
			log_warn("reload: [spool] max_bytes %lld needs segments of at least %lld "
				 "bytes (at most 512 files open); they are %lld bytes until a "
				 "restart: using max_bytes %lld",
				 (long long)d->cfg->spool_max_bytes,
				 (long long)(d->cfg->spool_max_bytes / 512),
				 (long long)d->segment_bytes, (long long)(512 * d->segment_bytes));
			d->cfg->spool_max_bytes = 512 * d->segment_bytes;
		}
		spool_set_limits(d->spool, d->cfg->spool_max_bytes, d->cfg->spool_sync);
		sync_configure(d);
		{
			int64_t seg;

			spool_limits(d->cfg, &seg, &d->pause_at, &d->resume_at);
		}
		log_notice("configuration reloaded (log level %s, fever at %.1f \u00b0C)",
			   log_level_name((enum log_level)d->cfg->log_level), d->cfg->fever_c);
	}
	free(errs);
	notify_ready();
}

static int
handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!d->stopping) {
				log_notice(
					"received %s: stopping intake, draining the spool to PostgreSQL"
					" (at most %lld s)",
					strsignal((int)si.ssi_signo),
					(long long)d->cfg->shutdown_timeout / 1000);
				d->stopping = 1;
				notify_stopping();
				d->stop_deadline_ms = mono_ms() + d->cfg->shutdown_timeout;
				/* While the spool directory is gone the receive thread
				 * may be waiting, unacknowledged, for it to come back;
				 * told to stop, it would end the process at once, and
				 * what only the open files still hold would be lost. */
				if (spool_check_dir(d->spool) == SPOOL_DIR_OK)
					mqtt_client_stop(d->mqtt, 2000);
				else
					d->stop_ingest = 1;
			}
			break;
		case SIGHUP: reload(d); break;
		default: break;
		}
	}
	return 0;
}

static int
add_fd(struct daemon *d, int fd, int tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)tag };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void
drain_fd(int fd)
{
	eventfd_t v;

	if (eventfd_read(fd, &v) < 0) {
		/* EAGAIN: nothing pending */
	}
}

static int
setup(struct daemon *d)
{
	struct spool_options so = {
		.dir = d->cfg->spool_dir,
		.max_bytes = d->cfg->spool_max_bytes,
		.segment_bytes = d->cfg->spool_segment_bytes,
		.max_payload = d->cfg->max_payload,
		.sync = d->cfg->spool_sync,
	};
	struct itimerspec its = { { 0, TICK_MS * 1000000 }, { 0, TICK_MS * 1000000 } };
	struct store_options sto;
	sigset_t mask;
	uint64_t start;
	int err;

	d->epfd = d->sigfd = d->timerfd = d->wakefd = d->donefd = d->regfd = -1;
	d->reject_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	d->publish_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	if ((err = load_id_key(d)) < 0)
		return err;
	d->reg = registry_snapshot_empty(d->cfg->site_timezone);
	if (!d->reg) {
		log_err("unknown [site] timezone %s", d->cfg->site_timezone);
		return -EINVAL;
	}
	apply_config(d);
	{
		struct rules_clock now = rules_now();

		if ((err = rules_create(&d->rcfg, &now, &d->rules)) < 0)
			return err;
	}
	{
		static const double bounds[HIST_BUCKETS] = { 0.0005, 0.001, 0.002, 0.005,
							     0.01,   0.02,  0.05,  0.1,
							     0.5,    1,	    5,	   60 };

		d->count.fever_latency.bounds = bounds;
		map_init(&d->count.reject_reasons);
	}

	d->events = calloc(NORM_MAX_EVENTS, sizeof(*d->events));
	d->batches[0] = calloc(1, sizeof(struct store_batch));
	d->batches[1] = calloc(1, sizeof(struct store_batch));
	if (!d->events || !d->batches[0] || !d->batches[1])
		return -ENOMEM;
	d->filling = d->batches[0];

	spool_limits(d->cfg, &so.segment_bytes, &d->pause_at, &d->resume_at);
	d->segment_bytes = so.segment_bytes;
	err = spool_open(&so, &d->spool);
	if (err < 0) {
		log_err("cannot open the spool in %s: %s", so.dir, strerror(-err));
		return err;
	}
	start = spool_load_checkpoint(d->spool);
	if (start < spool_first(d->spool))
		start = spool_first(d->spool);
	if (start > spool_end(d->spool))
		start = spool_end(d->spool);
	d->committed = d->store_pos = start;
	log_info("spool %s: replaying from position %" PRIu64 " (%" PRIu64
		 " bytes not yet in PostgreSQL)",
		 so.dir, start, spool_pending(d->spool, start));
	if ((err = spool_reader_create(d->spool, start, &d->rules_rd)) < 0 ||
	    (err = spool_reader_create(d->spool, start, &d->store_rd)) < 0)
		return err;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* Threads started from here on inherit the blocked signals. */
	err = sync_start(d);
	if (err < 0) {
		log_err("cannot start the spool sync thread: %s", strerror(-err));
		return err;
	}
	signal(SIGPIPE, SIG_IGN);
	d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->regfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sigfd < 0 || d->timerfd < 0 || d->wakefd < 0 || d->donefd < 0 || d->regfd < 0 ||
	    d->epfd < 0)
		return -errno;
	if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0)
		return -errno;
	if ((err = add_fd(d, d->sigfd, SRC_SIGNAL)) < 0 ||
	    (err = add_fd(d, d->timerfd, SRC_TIMER)) < 0 ||
	    (err = add_fd(d, d->wakefd, SRC_SPOOL)) < 0 ||
	    (err = add_fd(d, d->donefd, SRC_STORE)) < 0 ||
	    (err = add_fd(d, d->regfd, SRC_REGISTER)) < 0)
		return err;

	sto.conninfo = d->cfg->pg_conninfo;
	sto.instance = d->cfg->mqtt_client_id;
	sto.spool_id = spool_id(d->spool);
	sto.topic_root = d->cfg->topic_root;
	err = registry_create(d->cfg->pg_conninfo, d->cfg->site_timezone, d->regfd,
			      d->cfg->max_open_alerts + RESTORE_FOLD_STEP, &d->registry);
	if (err < 0) {
		log_err("cannot start the register thread: %s", strerror(-err));
		return err;
	}
	err = store_create(&sto, d->donefd, &d->store);
	if (err < 0) {
		log_err("cannot start the store: %s", strerror(-err));
		return err;
	}
	err = mqtt_client_create(d->cfg, d->spool, d->wakefd, &d->mqtt);
	if (err < 0)
		return err;
	mqtt_client_set_shorten(d->mqtt, alerts_shorten);
	{
		uint64_t covered;

		if ((err = mqtt_client_restore_replays(d->mqtt, &covered)) < 0) {
			log_err("cannot read the spool to restore the replay memory: %s",
				strerror(-err));
			return err;
		}
		atomic_store(&d->replay_pos, covered);
		save_replays(d, mono_ms(), 1);
		atomic_store(&d->replay_ready, 1);
	}
	/* A spool disk already full at start: stay away from the broker
	 * until PostgreSQL has taken what the spool holds. */
	check_spool_space(d);
	if (!d->paused && (err = mqtt_client_start(d->mqtt)) < 0)
		return err;
	err = metrics_start(d->cfg->metrics_listen, &d->metrics);
	if (err < 0)
		log_warn("metrics on %s not available (%s); running without them",
			 d->cfg->metrics_listen, strerror(-err));
	d->watchdog_ms = notify_watchdog_ms();
	d->last_stats_ms = d->last_rules_tick_ms = d->started_ms = mono_ms();
	mqtt_conflict_init(&d->conflict, d->started_ms);
	d->last_watchdog_ms = d->last_status_ms = d->started_ms;
	return 0;
}

static void
teardown(struct daemon *d)
{
	mqtt_client_stop(d->mqtt, 1000);
	sync_stop(d); /* nothing is appended any more; its saves end */
	if (atomic_load(&d->replay_ready))
		save_replays(d, mono_ms(), 1);
	mqtt_client_destroy(d->mqtt);
	store_destroy(d->store);
	spool_reader_destroy(d->rules_rd);
	spool_reader_destroy(d->store_rd);
	spool_close(d->spool);
	store_batch_free(d->batches[0]);
	store_batch_free(d->batches[1]);
	free(d->events);
	metrics_stop(d->metrics);
	map_finish(&d->count.reject_reasons, NULL);
	rules_destroy(d->rules);
	rules_output_free(&d->out);
	registry_destroy(d->registry);
	registry_snapshot_free(d->reg);
	free(d->id_key);
	{
		int fds[] = { d->epfd, d->sigfd, d->timerfd, d->wakefd, d->donefd, d->regfd };

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
}

/* The shutdown deadline passed with `pending` bytes not in PostgreSQL:
 * says where they are, and whether the next start can load them. */
static void
log_stop_loss(struct daemon *d, uint64_t pending)
{
	uint64_t deleted = spool_pending_deleted(d->spool, d->committed);

	if (deleted > 0)
		log_err("shutdown deadline reached with %" PRIu64 " spool bytes not yet in"
			" PostgreSQL; %" PRIu64
			" of them are in spool files that were deleted: those"
			" are lost (they were acknowledged: the broker does not send them again)",
			pending, deleted);
	if (deleted == pending)
		return;
	if (spool_check_dir(d->spool) == SPOOL_DIR_REPLACED)
		log_err("shutdown deadline reached with %" PRIu64 " spool bytes not yet in"
			" PostgreSQL, in the directory that %s named before it was replaced: they"
			" are loaded at the next start only if that directory is put back",
			pending - deleted, d->cfg->spool_dir);
	else
		log_warn("shutdown deadline reached with %" PRIu64 " spool bytes not yet in"
			 " PostgreSQL; they are loaded at the next start",
			 pending - deleted);
}

int
daemon_run(struct config *cfg, const char *config_path)
{
	struct daemon d = { .cfg = cfg, .config_path = config_path };
	int rc = 0;

	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	log_notice("cordond started: broker %s, spool %s", cfg->mqtt_uri, cfg->spool_dir);
	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(d.epfd, evs, 8, d.polling ? SPOOL_POLL_MS : -1);

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (n == 0 && d.polling)
			on_spool(&d, 0);
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case SRC_SIGNAL: handle_signal(&d); break;
			case SRC_TIMER: {
				uint64_t ticks;

				if (read(d.timerfd, &ticks, sizeof(ticks)) < 0) {
					/* EAGAIN */
				}
				on_tick(&d);
				break;
			}
			case SRC_SPOOL:
				drain_fd(d.wakefd);
				on_spool(&d, 1);
				break;
			case SRC_STORE:
				drain_fd(d.donefd);
				pump(&d);
				break;
			case SRC_REGISTER:
				drain_fd(d.regfd);
				take_register(&d);
				break;
			}
		}
		if (d.stopping) {
			uint64_t pending;

			pump(&d);
			if (d.stop_ingest && spool_check_dir(d.spool) == SPOOL_DIR_OK) {
				mqtt_client_stop(d.mqtt, 2000);
				d.stop_ingest = 0;
			}
			/* Bytes, not the distance between positions: a gap
			 * left by a cut tail holds none. */
			pending = spool_pending(d.spool, d.committed);
			if (pending == 0) {
				log_notice("drained: everything received is in PostgreSQL");
				break;
			}
			if (mono_ms() >= d.stop_deadline_ms) {
				log_stop_loss(&d, pending);
				break;
			}
		}
	}
	log_stats(&d);
	teardown(&d);
	log_notice("cordond stopped");
	return rc;
}
