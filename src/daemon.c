/* daemon.c - cordond's main loop and the wiring of its objects.
 *
 * The objects, one job each (docs/architecture.md, HACKING.md "Layout"):
 * pipeline (spool -> normalize -> rules, and batches for the store),
 * publisher (alert transitions and reject notices onto the MQTT client's
 * publish queue), intake (spool space and health, the intake pause),
 * syncer (the spool's sync thread, the replay memory's saves), status
 * (systemd, /healthz, /metrics, the stats line), health (the backlog and
 * client_id_conflict alerts). The loop is loop_once(): one wait, then the
 * same steps in the same order every turn. */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "alerts.h"
#include "clocks.h"
#include "cluster.h"
#include "handover.h"
#include "health.h"
#include "idhash.h"
#include "intake.h"
#include "log.h"
#include "mqtt_client.h"
#include "mqtt_watch.h"
#include "notify.h"
#include "pipeline.h"
#include "publisher.h"
#include "registry.h"
#include "retention.h"
#include "rules.h"
#include "sessions.h"
#include "shards.h"
#include "spool.h"
#include "status.h"
#include "store.h"
#include "syncer.h"
#include "temp.h"

#define TICK_MS 100
#define RULE_STATE_WAIT_MS 5000 /* at start, rules wait this long for G3 state */
/* Open alerts past max_open_alerts of a site and kind folded at start in
 * one pass (each pass's are resolved in PostgreSQL before the next is
 * loaded): what a pass holds in memory is bounded. */
#define RESTORE_FOLD_STEP 1000

enum { SRC_SIGNAL = 1, SRC_TIMER, SRC_SPOOL, SRC_STORE, SRC_REGISTER, SRC_CLUSTER };

struct daemon {
	struct config *cfg;
	const char *config_path;
	struct spool *spool;
	struct mqtt_client *mqtt;  /* the instance's own client */
	struct sessions *sessions; /* it, and the shard sessions (sessions.h) */
	struct store *store;
	struct registry *registry;
	struct retention *retention;
	int epfd, sigfd, timerfd, wakefd, donefd, regfd, clusterfd;

	/* [cluster] shards > 0 (docs/scaling.md): the lease thread, its last
	 * view, the shards ready for a session (their rule state loaded),
	 * and the released shards waiting for the pipeline to pass the
	 * spool's end at their session's end. NULL/0 when not clustered. */
	struct cluster *cluster;
	struct cluster_view view;
	bool ready[CLUSTER_MAX_SHARDS];
	bool release_wait[CLUSTER_MAX_SHARDS];
	uint64_t release_pos[CLUSTER_MAX_SHARDS];
	int64_t release_epoch[CLUSTER_MAX_SHARDS]; /* the lease its session ran under */
	bool registered;			   /* a register snapshot was taken */
	/* [cluster] discovery: shard 0's stream's cuts (handover.h) waiting
	 * for the store to commit what came before them. */
	struct handover_cut *cuts;
	size_t ncuts, cuts_cap;
	/* Shards whose rule state is to be loaded again (handovers_done):
	 * once what the rules judged before is committed (reseed_pos), or
	 * once their seed in flight is restored (reseed_after). */
	bool reseed_wait[CLUSTER_MAX_SHARDS];
	uint64_t reseed_pos[CLUSTER_MAX_SHARDS];
	bool reseed_after[CLUSTER_MAX_SHARDS];

	/* The objects, one job each. */
	struct pipeline pl;
	struct publisher pub;
	struct intake intake;
	struct syncer syncer;
	struct status status;
	struct health health;

	/* The rules engine and its output, shared by the pipeline (events),
	 * health and the timer step; and what the restore reads. */
	struct rules *rules;
	struct rules_output out;
	uint8_t *id_key;
	size_t id_key_len;
	/* Another client taking our client id (client_id_conflict). */
	struct mqtt_conflict conflict;
	/* Clustered ([cluster] shards > 0): the shards the rules act for, as
	 * the last lease view said (shards.h); the shards whose seed had more
	 * open alerts than one pass loads, with their epochs, asked for again
	 * at the next restore pass. reseed_first: the first seed had more. */
	struct shards shards;
	int64_t shards_reseed_tag[CLUSTER_MAX_SHARDS];
	bool reseed_first;

	int polling;	      /* a stream: poll the spool, unwoken */
	int64_t last_wake_us; /* the receive thread's last wake-up */
	int64_t last_rules_tick_ms;
	int64_t started_ms;
	int64_t wall_offset_us; /* CLOCK_REALTIME - CLOCK_MONOTONIC, last tick */
	int stopping;
	int64_t stop_deadline_ms;
	int stop_ingest; /* SIGTERM while the directory is gone: the stop waits */
};

static struct rules_clock
rules_now(void)
{
	return clocks_rules_now();
}

/* The rules' transitions in d->out onto the publish queue and into the
 * batch being filled (publisher.c). */
static void
publish_transitions(struct daemon *d, int64_t received_us)
{
	publisher_transitions(&d->pub, &d->out, d->pl.reg, d->pl.filling, received_us);
}

/* Reads the ID hashing key; 0 or a negative errno. */
static int
load_id_key(struct daemon *d)
{
	int err;

	if (!d->cfg->id_key_file[0]) {
		log_notice("no [site] id_key_file: national ID numbers are dropped, never stored");
		return 0;
	}
	err = idhash_key_load(d->cfg->id_key_file, &d->id_key, &d->id_key_len);
	if (err == -EINVAL)
		log_err("[site] id_key_file %s: the key must be at least %d bytes",
			d->cfg->id_key_file, IDHASH_KEY_MIN);
	else if (err < 0)
		log_err("cannot read [site] id_key_file %s: %s", d->cfg->id_key_file,
			strerror(-err));
	return err;
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
		int err;

		/* Clustered, the first seed is of site _daemon: only this
		 * instance's own alerts are its to carry on. */
		if (d->shards.nshards &&
		    (strncmp(a->subject, "instance:", 9) != 0 ||
		     strcmp(a->subject + 9, d->cfg->mqtt_client_id) != 0))
			continue;
		err = rules_restore_alert(d->rules, a, &now, &d->out);

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

/* The register's rules (card_exception) on the snapshot in use, once the
 * rule state is there (its memory of what was raised comes with it). */
static void
register_rules(struct daemon *d)
{
	struct rules_clock now = rules_now();

	if (!d->pl.rules_ready)
		return;
	shards_set_now(&d->shards, clocks_mono_ms());
	if (rules_register(d->rules, d->pl.reg, &now, &d->out) < 0)
		log_err("out of memory in the register's rules");
	publish_transitions(d, 0);
}

static void begin_reseed(struct daemon *d, int k);

/* [cluster] discovery: the sites whose hand-over `now` says is done and
 * `before` did not (handover.h). A shard of theirs this instance owns
 * had their messages wait (SHARDS_WHY_HANDOVER) while another instance
 * judged them under shard 0: its rule state is loaded again, with what
 * that instance wrote. When this instance judges shard 0, the rule state
 * is the one it has: nothing to do. */
static void
handovers_done(struct daemon *d, const struct registry_snapshot *before,
	       const struct registry_snapshot *now)
{
	if (!d->shards.discovery || !d->shards.have_view)
		return;
	if (d->shards.ready[0] && d->shards.view.shard[0].state != CLUSTER_NOT_OWNED)
		return;
	for (size_t i = 0; i < now->nsites; i++) {
		const struct reg_site *was;
		int k;

		if (!(now->sites[i].handover & HANDOVER_DISCOVERY_CUT))
			continue;
		was = before ? registry_site(before, now->sites[i].site) : NULL;
		if (was && (was->handover & HANDOVER_DISCOVERY_CUT))
			continue;
		k = cluster_shard_of(now->sites[i].site, d->shards.nshards);
		if (d->shards.view.shard[k].state == CLUSTER_NOT_OWNED || d->reseed_wait[k])
			continue;
		if (!d->shards.ready[k]) {
			/* its seed in flight may have been read before the cut */
			d->reseed_after[k] = true;
			continue;
		}
		begin_reseed(d, k);
	}
}

/* Shard k's rule state is to be loaded again: its records wait from now
 * (not ready); what the rules judged of it before is committed first
 * (reseeds_due()), so that the seed has it. */
static void
begin_reseed(struct daemon *d, int k)
{
	if (!shards_reseed(&d->shards, k))
		return;
	d->reseed_wait[k] = true;
	d->reseed_pos[k] = spool_reader_pos(d->pl.rules_rd);
	log_info("shard %d: a site's hand-over from shard 0 is done: its rule state is loaded"
		 " again once what was judged of it is committed",
		 k);
}

/* Each turn: the shards of begin_reseed() whose judged records are
 * committed forget their state and ask for their seed. */
static void
reseeds_due(struct daemon *d)
{
	bool any = false;

	for (int k = 0; k < d->shards.nshards; k++)
		any = any || (d->reseed_wait[k] && d->pl.committed >= d->reseed_pos[k]);
	if (!any)
		return;
	rules_forget_sites(d->rules, shards_holds, &d->shards);
	for (int k = 0; k < d->shards.nshards; k++) {
		if (!d->reseed_wait[k] || d->pl.committed < d->reseed_pos[k])
			continue;
		d->reseed_wait[k] = false;
		if (shards_seed_wanted(&d->shards, k, d->shards.asked[k]))
			registry_seed_shard(d->registry, d->shards.nshards, k, d->shards.asked[k]);
	}
}

/* [cluster] discovery: shard 0's cuts taken from the sessions, and each
 * recorded in PostgreSQL (HANDOVER_DISCOVERY_CUT) once the store has
 * committed what came before it: the next owner of the site's rule state
 * loads it from there. */
static void
handover_cuts(struct daemon *d)
{
	struct handover_cut cut;
	size_t kept = 0;

	while (sessions_next_cut(d->sessions, &cut)) {
		if (d->ncuts == d->cuts_cap) {
			size_t cap = d->cuts_cap ? 2 * d->cuts_cap : 16;
			struct handover_cut *c = realloc(d->cuts, cap * sizeof(*c));

			if (!c) {
				log_err("out of memory: the hand-over of site %s is not recorded;"
					" its shard waits until shard 0's next owner records it",
					cut.site);
				continue;
			}
			d->cuts = c;
			d->cuts_cap = cap;
		}
		d->cuts[d->ncuts++] = cut;
	}
	for (size_t i = 0; i < d->ncuts; i++) {
		int err = d->pl.committed < d->cuts[i].end ?
			-EAGAIN :
			registry_note_handover(d->registry, d->cuts[i].site, 0,
					       HANDOVER_DISCOVERY_CUT);

		if (err == -EAGAIN || err == -ENOMEM) {
			d->cuts[kept++] = d->cuts[i];
			continue;
		}
		if (err < 0) /* cannot be: the gate keeps only topic levels */
			log_err("site %s: its hand-over cannot be recorded: %s", d->cuts[i].site,
				strerror(-err));
		else
			log_info("site %s: shard 0's stream passed its hand-over marker; recorded",
				 d->cuts[i].site);
	}
	d->ncuts = kept;
}

static void
take_register(struct daemon *d)
{
	struct registry_snapshot *s = registry_take(d->registry);

	if (!s)
		return;
	pipeline_apply_timezone(&d->pl, s);
	if (s->seed) {
		restore_rule_state(d, s);
		d->pl.rules_ready = 1;
		/* More open alerts than one pass loads: the next pass once
		 * this one's folded alerts are resolved in PostgreSQL (and
		 * their messages handed on: next_restore_pass). */
		if (s->seed->more) {
			d->pl.reseed_batch = d->pl.filling;
			d->reseed_first = true;
		}
	}
	handovers_done(d, d->pl.reg, s);
	pipeline_set_register(&d->pl, s);
	shards_set_register(&d->shards, d->pl.reg);
	sessions_set_register(d->sessions, d->pl.reg); /* each shard session's sites */
	d->registered = true;
	register_rules(d);
}

/* ---- clustered: the rule state of the shards owned (docs/scaling.md,
 * "Rule state at a takeover") ---- */

/* A new lease view, copied from the cluster thread: the rule state of the
 * shards lost (or taken again under another epoch) is forgotten, and the
 * register thread is asked for the state of the shards newly owned. The
 * rules cursor waits before their records, and their timers are out of
 * the rules' scope, until it is restored (take_seeds). */
static void
shards_view_changed(struct daemon *d, const struct cluster_view *v)
{
	struct shards_change ch;

	shards_apply_view(&d->shards, v, &ch);
	/* Also before a seed is asked for: state of a site whose home is not
	 * ready here (judged under shard 0 before its hand-over, say) must not
	 * lie under the seed that comes. */
	if (ch.nlost > 0 || (ch.nwanted > 0 && d->shards.discovery)) {
		int64_t t0 = clocks_mono_us();
		size_t n = rules_forget_sites(d->rules, shards_holds, &d->shards);

		for (int i = 0; i < ch.nlost; i++)
			d->shards_reseed_tag[ch.lost[i]] = 0;
		if (ch.nlost > 0)
			log_notice("%d shard(s) lost (shard %d%s): their rule state forgotten (%zu"
				   " entries in %" PRId64 " ms)",
				   ch.nlost, ch.lost[0], ch.nlost > 1 ? " and more" : "", n,
				   (clocks_mono_us() - t0) / 1000);
	}
	for (int i = 0; i < ch.nwanted; i++) {
		int shard = ch.wanted[i];

		registry_seed_shard(d->registry, d->shards.nshards, shard, d->shards.asked[shard]);
		log_info("shard %d taken (epoch %" PRId64 "): loading its rule state", shard,
			 d->shards.asked[shard]);
	}
}

/* The shard a seed's row of `site` is for, if still wanted: its home
 * (shards_home_of()), or with discovery its own shard (the register
 * thread read the rows with a newer register than the one in use, which
 * had the site's hand-over done); -1: neither is wanted. */
static int
seed_shard(struct daemon *d, const struct registry_seed *seed, const char *site)
{
	int home = shards_home_of(&d->shards, site);
	int own = cluster_shard_of(site, seed->nshards);

	if (home >= 0 && home < seed->nshards &&
	    shards_seed_wanted(&d->shards, home, seed->shard_tags[home]))
		return home;
	if (own != home && shards_seed_wanted(&d->shards, own, seed->shard_tags[own]))
		return own;
	return -1;
}

/* A seed of shards (registry_seed_shard): its rows of the shards still
 * owned under the epoch they were asked for are restored as at start
 * (folds published), those shards are ready, and the register's rules run
 * for their sites. Rows of a shard lost meanwhile are dropped. */
static void
restore_shard_seed(struct daemon *d, const struct registry_seed *seed)
{
	struct rules_clock now = rules_now();
	size_t restored = 0, folded = 0, nseen = 0, stale = 0;
	int nready = 0, first = -1;
	char nsites_text[32] = "every";

	for (size_t i = 0; i < seed->nalerts; i++) {
		const struct alert *a = &seed->alerts[i];
		int shard = seed_shard(d, seed, a->site);
		int err;

		if (shard < 0) {
			stale++;
			continue;
		}
		err = rules_restore_alert(d->rules, a, &now, &d->out);
		if (err == 0)
			restored++;
		else if (err == 1)
			folded++;
		else
			log_err("out of memory restoring alert %s", a->alert_id);
		if (d->out.n)
			publish_transitions(d, 0);
	}
	for (size_t i = 0; i < seed->nseen; i++) {
		const struct alert_seen *x = &seed->seen[i];
		int shard = seed_shard(d, seed, x->site);
		int err;

		if (shard < 0) {
			stale++;
			continue;
		}
		if ((err = rules_restore_seen(d->rules, d->pl.reg, x, &now)) != 1)
			nseen++;
		if (err < 0)
			log_warn("cannot restore %s %s/%s", alert_state_seen_name(x->what), x->site,
				 x->id);
	}
	for (int shard = 0; shard < seed->nshards; shard++) {
		if (!shards_seed_restored(&d->shards, shard, seed->shard_tags[shard]))
			continue;
		if (first < 0)
			first = shard;
		nready++;
		if (seed->more)
			d->shards_reseed_tag[shard] = seed->shard_tags[shard];
		if (d->reseed_after[shard]) { /* a hand-over done while it loaded */
			d->reseed_after[shard] = false;
			begin_reseed(d, shard);
		}
	}
	if (seed->nsites)
		snprintf(nsites_text, sizeof(nsites_text), "%zu", seed->nsites);
	if (seed->more && nready)
		d->pl.reseed_batch = d->pl.filling;
	if (folded)
		log_warn("%zu open alerts past [rules] max_open_alerts = %" PRId64 " for their site"
			 " and kind folded into aggregate alerts (resolved as \"folded\")",
			 folded, d->cfg->max_open_alerts);
	if (nready)
		log_notice("rule state of %d shard(s) restored (shard %d%s, %s sites): %zu open"
			   " alerts, %zu last-seen times; the rules act for them",
			   nready, first, nready > 1 ? " and more" : "", nsites_text, restored,
			   nseen);
	if (stale)
		log_info("%zu rows of a rule state loaded for shards lost since dropped", stale);
	register_rules(d); /* card_exception of the sites now in scope */
}

/* Every seed of shards loaded (the register's eventfd). */
static void
take_seeds(struct daemon *d)
{
	struct registry_seed *seed;

	while ((seed = registry_take_seed(d->registry)) != NULL) {
		restore_shard_seed(d, seed);
		registry_seed_free(seed);
	}
}

/* The next restore pass of the shards whose seed had more open alerts
 * (next_restore_pass): asked for again under the same epoch. */
static void
reseed_shards(struct daemon *d)
{
	for (int shard = 0; shard < d->shards.nshards; shard++) {
		int64_t tag = d->shards_reseed_tag[shard];

		d->shards_reseed_tag[shard] = 0;
		if (tag && shards_seed_wanted(&d->shards, shard, tag))
			registry_seed_shard(d->registry, d->shards.nshards, shard, tag);
	}
}

/* Clustered: the rules act for the shards owned and ready (their scope),
 * the pipeline judges their records only, the alert rows carry their
 * epochs (shards.h). */
static void
setup_shards(struct daemon *d)
{
	shards_init(&d->shards, (int)d->cfg->cluster_shards);
	if (!d->shards.nshards)
		return;
	shards_set_discovery(&d->shards, d->cfg->cluster_discovery);
	rules_set_scope(d->rules, shards_in_scope, &d->shards);
	d->pl.shards = &d->shards;
	d->pub.shards = &d->shards;
}

/* The next pass of the restore (take_register) once this one's folded
 * alerts are committed and their messages handed to Paho: each pass
 * queues two messages per alert it folds, and a queue that overflowed
 * would drop the zero-length retained messages that clear their state. */
static void
next_restore_pass(struct daemon *d)
{
	struct mqtt_client_stats is;

	if (!d->pl.reseed_due)
		return;
	mqtt_client_get_stats(d->mqtt, &is);
	if (is.out_queued >= RESTORE_FOLD_STEP)
		return;
	d->pl.reseed_due = 0;
	if (d->reseed_first)
		registry_reseed(d->registry);
	d->reseed_first = false;
	reseed_shards(d);
}

/* Clustered: whether messages flow for every shard the rules act for,
 * i.e. each owned and ready shard's session is connected. While one is
 * not (a broker node lost, its reconnect held back past the lease's
 * deadline, refused by the broker), the timers that measure silence
 * (gate_silent) wait, as for an intake pause: a shard's gates are not
 * silent because its session is down. Coarse on purpose: one shard down
 * holds every shard's silence timers, never raises hundreds of false
 * gate_silent. Not clustered: true. */
static bool
shards_flowing(struct daemon *d)
{
	struct sessions_shard_stats st;

	if (!d->cluster)
		return true;
	for (int k = 0; k < d->shards.nshards; k++) {
		if (!d->shards.ready[k])
			continue;
		sessions_shard_stats(d->sessions, k, &st);
		if (st.state != CLUSTER_NOT_OWNED && !st.connected)
			return false;
	}
	return true;
}

/* Every second, once the rule state is there: the timer rules, the
 * daemon's own alerts (health.c), and their transitions published. */
static void
rules_timers(struct daemon *d, int64_t now)
{
	if (!d->pl.rules_ready && now - d->started_ms >= RULE_STATE_WAIT_MS) {
		log_warn("rule state not loaded from PostgreSQL within %d s: starting the rules"
			 " without it (it is merged in when PostgreSQL answers)",
			 RULE_STATE_WAIT_MS / 1000);
		d->pl.rules_ready = 1;
	}
	if (d->pl.rules_ready && now - d->last_rules_tick_ms >= 1000) {
		struct mqtt_client_stats is;
		struct rules_clock rnow = rules_now();

		mqtt_client_get_stats(d->mqtt, &is);
		rules_intake(d->rules, is.connected && !d->intake.paused && shards_flowing(d),
			     &rnow);
		health_tick(&d->health, &is, now);
		rnow = rules_now();
		shards_set_now(&d->shards, now);
		if (rules_tick(d->rules, d->pl.reg, &rnow, &d->out) < 0)
			log_err("out of memory in the timer rules");
		publish_transitions(d, 0);
		d->last_rules_tick_ms = now;
	}
}

/* The 100 ms tick, in this order. */
static void
on_tick(struct daemon *d)
{
	int64_t now = clocks_mono_ms();

	sessions_tick(d->sessions, now); /* the instance's client and every shard session */
	clocks_watch_wall(&d->wall_offset_us);
	next_restore_pass(d);
	intake_watch(&d->intake);
	intake_check_space(&d->intake, d->stopping);
	status_tick(&d->status, now);
	rules_timers(d, now);
}

/* Wake moderation, as network drivers do it. At a low rate the receive
 * thread wakes the loop for each message, which the rules then see at
 * once. In a stream (two messages within SPOOL_STREAM_US, or a poll that
 * finds two or more) the loop stops asking to be woken and polls the spool
 * every SPOOL_POLL_MS instead: a wake-up and a context switch per message
 * cost cordond 8 % of its CPU at 9,000 messages/s; a message then waits at
 * most SPOOL_POLL_MS. A poll that finds fewer than two ends the stream.
 * `now` (CLOCK_MONOTONIC, us) and `before` (the records the rules cursor had
 * read): as they were before this turn's pump. */
#define SPOOL_POLL_MS 1
#define SPOOL_STREAM_US 500

static void
moderate_wakes(struct daemon *d, int woken, int64_t now, uint64_t before)
{
	int stream;

	if (woken) {
		stream = now - d->last_wake_us < SPOOL_STREAM_US;
		d->last_wake_us = now;
	} else {
		stream = d->pl.nrecords - before >= 2;
	}
	d->polling = stream;
	if (stream)
		return;
	sessions_want_wake(d->sessions);
	/* A message appended just before we asked wrote no eventfd. (Until
	 * the rules are ready their cursor stays put: the register's arrival
	 * pumps what came meanwhile.) */
	if (d->pl.rules_ready && !pipeline_is_caught_up(&d->pl) && !pipeline_is_waiting(&d->pl))
		d->polling = 1;
}

/* Logs each line of a memstream's text at `level`. */
static void
log_lines(enum log_level level, const char *prefix, char *text)
{
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		log_msg(level, "%s%s", prefix, line);
}

/* The configuration in force, to every object: at a reload, the one place
 * a new configuration takes effect. intake first: it may lower
 * [spool] max_bytes to what the spool's segments allow. */
static void
reconfigure(struct daemon *d)
{
	log_set_level((enum log_level)d->cfg->log_level);
	intake_reconfigure(&d->intake, d->cfg);
	syncer_reconfigure(&d->syncer, d->cfg);
	pipeline_reconfigure(&d->pl, d->cfg);
	publisher_reconfigure(&d->pub, d->cfg);
	health_reconfigure(&d->health, d->cfg);
	status_reconfigure(&d->status, d->cfg);
	sessions_reconfigure(d->sessions, d->cfg);
	/* A reload also runs the retention at once (NULL at start: its first
	 * run follows its start). */
	retention_reconfigure(d->retention, d->cfg->retention_days);
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
		reconfigure(d);
		register_rules(d); /* [rules] cards_per_household */
		{
			char fever[16];

			temp_format_c(d->cfg->fever_c, fever, sizeof(fever));
			log_notice("configuration reloaded (log level %s, fever at %s \u00b0C)",
				   log_level_name((enum log_level)d->cfg->log_level), fever);
		}
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
				d->stop_deadline_ms = clocks_mono_ms() + d->cfg->shutdown_timeout;
				/* Clustered: every shard is given back first (its
				 * session ends, the rules pass what it delivered, the
				 * lease is released); the instance's own client stops
				 * after, once their alerts are out (drain_step). */
				if (d->cluster) {
					cluster_stop_begin(d->cluster);
					d->stop_ingest = 1;
				}
				/* While the spool directory is gone the receive thread
				 * may be waiting, unacknowledged, for it to come back;
				 * told to stop, it would end the process at once, and
				 * what only the open files still hold would be lost. */
				else if (spool_check_dir(d->spool) == SPOOL_DIR_OK)
					sessions_stop_begin(d->sessions, 2000);
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
	int err;

	d->epfd = d->sigfd = d->timerfd = d->wakefd = d->donefd = d->regfd = d->clusterfd = -1;
	publisher_init(&d->pub, d->cfg);
	intake_init(&d->intake, d->cfg);
	status_init(&d->status, d->cfg);
	health_init(&d->health, d->cfg);
	if ((err = load_id_key(d)) < 0)
		return err;
	log_set_level((enum log_level)d->cfg->log_level);
	if ((err = pipeline_init(&d->pl, d->cfg, d->id_key, d->id_key_len)) < 0)
		return err;
	{
		struct rules_clock now = rules_now();

		if ((err = rules_create(&d->pl.rcfg, &now, &d->rules)) < 0)
			return err;
	}

	so.segment_bytes = d->intake.segment_bytes;
	err = spool_open(&so, &d->spool);
	if (err < 0) {
		log_err("cannot open the spool in %s: %s", so.dir, strerror(-err));
		return err;
	}
	syncer_init(&d->syncer, d->spool);
	if ((err = pipeline_open(&d->pl, d->spool)) < 0)
		return err;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* Threads started from here on inherit the blocked signals. */
	err = syncer_start(&d->syncer, d->cfg);
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
	d->clusterfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sigfd < 0 || d->timerfd < 0 || d->wakefd < 0 || d->donefd < 0 || d->regfd < 0 ||
	    d->clusterfd < 0 || d->epfd < 0)
		return -errno;
	if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0)
		return -errno;
	if ((err = add_fd(d, d->sigfd, SRC_SIGNAL)) < 0 ||
	    (err = add_fd(d, d->timerfd, SRC_TIMER)) < 0 ||
	    (err = add_fd(d, d->wakefd, SRC_SPOOL)) < 0 ||
	    (err = add_fd(d, d->donefd, SRC_STORE)) < 0 ||
	    (err = add_fd(d, d->regfd, SRC_REGISTER)) < 0 ||
	    (err = add_fd(d, d->clusterfd, SRC_CLUSTER)) < 0)
		return err;

	sto.conninfo = d->cfg->pg_conninfo;
	sto.instance = d->cfg->mqtt_client_id;
	sto.spool_id = spool_id(d->spool);
	sto.topic_root = d->cfg->topic_root;
	err = registry_create(d->cfg->pg_conninfo, d->cfg->site_timezone, d->regfd,
			      d->cfg->max_open_alerts + RESTORE_FOLD_STEP,
			      d->cfg->cluster_shards > 0 ? "_daemon" : NULL, &d->registry);
	if (err < 0) {
		log_err("cannot start the register thread: %s", strerror(-err));
		return err;
	}
	/* before any seed of a shard is asked for (the first view) */
	registry_set_discovery(d->registry,
			       d->cfg->cluster_shards > 0 && d->cfg->cluster_discovery);
	err = store_create(&sto, d->donefd, &d->store);
	if (err < 0) {
		log_err("cannot start the store: %s", strerror(-err));
		return err;
	}
	err = retention_create(d->cfg->pg_conninfo, d->cfg->retention_days, &d->retention);
	if (err < 0) {
		log_err("cannot start the retention thread: %s", strerror(-err));
		return err;
	}
	{
		/* Clustered, the instance's own client subscribes to nothing:
		 * the shard sessions do (sessions.c). */
		struct mqtt_client_options mo = {
			.inbound = d->cfg->cluster_shards > 0 ? MQTT_CLIENT_INBOUND_NONE :
								MQTT_CLIENT_INBOUND_WILDCARD,
		};

		err = mqtt_client_create_with(d->cfg, d->spool, d->wakefd, &mo, &d->mqtt);
		if (err < 0)
			return err;
	}
	mqtt_client_set_shorten(d->mqtt, alerts_shorten);
	if ((err = sessions_create(d->cfg, d->spool, d->wakefd, d->mqtt, &d->sessions)) < 0)
		return err;
	sessions_set_registry(d->sessions, d->registry);
	if ((err = syncer_restore_replays(&d->syncer, d->sessions)) < 0)
		return err;

	/* The wiring: who reads and calls whom. */
	d->pl.store = d->store;
	d->pl.registry = d->registry;
	d->pl.pub = &d->pub;
	d->pl.syncer = &d->syncer;
	d->pl.rules = d->rules;
	d->pl.out = &d->out;
	d->pub.mqtt = d->mqtt;
	d->intake.spool = d->spool;
	d->intake.sessions = d->sessions;
	d->intake.pl = &d->pl;
	d->intake.syncer = &d->syncer;
	d->status.sessions = d->sessions;
	d->status.store = d->store;
	d->status.pl = &d->pl;
	d->status.pub = &d->pub;
	d->status.intake = &d->intake;
	d->status.retention = d->retention;
	d->health.spool = d->spool;
	d->health.store = d->store;
	d->health.intake = &d->intake;
	d->health.rules = d->rules;
	d->health.out = &d->out;
	d->health.conflict = &d->conflict;
	setup_shards(d);

	/* A spool disk already full at start: stay away from the broker
	 * until PostgreSQL has taken what the spool holds. */
	intake_check_space(&d->intake, 0);
	if (!d->intake.paused && (err = mqtt_client_start(d->mqtt)) < 0)
		return err;
	/* Clustered: the lease thread; the shards it gives come through
	 * SRC_CLUSTER (cluster_step). With no intake (paused) the instance's
	 * own client still publishes: start it anyway. */
	if (d->cfg->cluster_shards > 0) {
		if (d->intake.paused && (err = mqtt_client_start(d->mqtt)) < 0)
			return err;
		if ((err = cluster_create(d->cfg, d->clusterfd, &d->cluster)) < 0) {
			log_err("cannot start the cluster thread: %s", strerror(-err));
			return err;
		}
	}
	d->last_rules_tick_ms = d->started_ms = clocks_mono_ms();
	status_start(&d->status, d->started_ms);
	mqtt_conflict_init(&d->conflict, d->started_ms);
	return 0;
}

static void
teardown(struct daemon *d)
{
	mqtt_client_stop(d->mqtt, 1000);
	syncer_stop(&d->syncer);       /* then its last save of the replay memories */
	sessions_destroy(d->sessions); /* every shard session ended (and saved) */
	cluster_destroy(d->cluster);   /* leases still held are left to expire */
	mqtt_client_destroy(d->mqtt);
	retention_destroy(d->retention);
	store_destroy(d->store);
	registry_destroy(d->registry);
	pipeline_finish(&d->pl);
	spool_close(d->spool);
	status_finish(&d->status);
	publisher_finish(&d->pub);
	rules_destroy(d->rules);
	rules_output_free(&d->out);
	free(d->id_key);
	free(d->cuts);
	{
		int fds[] = { d->epfd,	 d->sigfd, d->timerfd,	d->wakefd,
			      d->donefd, d->regfd, d->clusterfd };

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
	uint64_t deleted = spool_pending_deleted(d->spool, d->pl.committed);

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

/* What one wait of the loop brought. */
struct wakeups {
	int signal;	/* signalfd */
	int tick;	/* the 100 ms timerfd */
	int woken;	/* the receive thread's eventfd: new records */
	int polled;	/* a stream: the poll's timeout ran out */
	int registered; /* the register thread's eventfd: a new snapshot */
	int clustered;	/* the cluster thread's eventfd: the view changed */
};

/* Waits for the next event (at most SPOOL_POLL_MS while polling) and reads
 * what woke us; 0 or -errno. A batch the store committed (its eventfd)
 * needs no flag: every turn pumps. */
static int
wait_events(struct daemon *d, struct wakeups *w)
{
	struct epoll_event evs[8];
	int n = epoll_wait(d->epfd, evs, 8, d->polling ? SPOOL_POLL_MS : -1);

	memset(w, 0, sizeof(*w));
	if (n < 0 && errno != EINTR) {
		log_err("epoll_wait: %s", strerror(errno));
		return -errno;
	}
	w->polled = n == 0 && d->polling;
	for (int i = 0; i < n; i++) {
		switch (evs[i].data.u32) {
		case SRC_SIGNAL: w->signal = 1; break;
		case SRC_TIMER: {
			uint64_t ticks;

			if (read(d->timerfd, &ticks, sizeof(ticks)) < 0) {
				/* EAGAIN */
			}
			w->tick = 1;
			break;
		}
		case SRC_SPOOL:
			drain_fd(d->wakefd);
			w->woken = 1;
			break;
		case SRC_STORE: drain_fd(d->donefd); break;
		case SRC_REGISTER:
			drain_fd(d->regfd);
			w->registered = 1;
			break;
		case SRC_CLUSTER:
			drain_fd(d->clusterfd);
			w->clustered = 1;
			break;
		}
	}
	return 0;
}

/* Clustered, after SIGTERM: whether the shards are given back (the
 * lease thread released every lease and marked the instance stopped), or
 * nothing is left to give back while PostgreSQL is away, or the shutdown
 * deadline came. Not clustered: at once. */
static bool
releases_over(struct daemon *d)
{
	if (!d->cluster || d->view.stopped || clocks_mono_ms() >= d->stop_deadline_ms)
		return true;
	/* A shard released here is NOT_OWNED in the view at once; the lease
	 * is released at the thread's next turn, and `stopped` says all are. */
	if (d->view.db_ok)
		return false;
	/* PostgreSQL away (no lease can be released, nor taken by anyone):
	 * over once nothing is held nor on its way to a release. */
	for (int k = 0; k < CLUSTER_MAX_SHARDS; k++)
		if (d->release_wait[k] ||
		    (k < d->view.nshards && d->view.shard[k].state != CLUSTER_NOT_OWNED))
			return false;
	return sessions_count(d->sessions) == 0;
}

/* After SIGTERM, each turn: clustered, the shards given back first
 * (releases_over()); the receive thread stopped once the spool directory
 * is back, and the end once that stop is done and everything received is
 * in PostgreSQL, or the shutdown deadline passed. The stop is the publish
 * thread's (it calls into Paho): the loop never waits for it, and goes on
 * pumping meanwhile. Returns 1 to end the loop. */
static int
drain_step(struct daemon *d)
{
	uint64_t pending;

	if (d->stop_ingest && spool_check_dir(d->spool) == SPOOL_DIR_OK && releases_over(d)) {
		sessions_stop_begin(d->sessions, 2000);
		d->stop_ingest = 0;
	}
	/* Bytes, not the distance between positions: a gap
	 * left by a cut tail holds none. */
	pending = pipeline_pending(&d->pl);
	if (pending == 0 && !d->stop_ingest && !sessions_is_stopped(d->sessions) &&
	    clocks_mono_ms() < d->stop_deadline_ms)
		return 0; /* the stop is under way: messages may still come */
	if (pending == 0 && !releases_over(d))
		return 0; /* shards still being given back */
	if (pending == 0) {
		log_notice("drained: everything received is in PostgreSQL");
		return 1;
	}
	if (clocks_mono_ms() >= d->stop_deadline_ms) {
		log_stop_loss(d, pending);
		return 1;
	}
	return 0;
}

/* Which shards may have a session: owned, with their rule state loaded
 * (shards.h: restore_shard_seed() set it for the epoch owned), once the
 * register is there. */
static void
shards_ready(struct daemon *d)
{
	for (int k = 0; k < CLUSTER_MAX_SHARDS; k++)
		d->ready[k] = k < d->view.nshards && d->registered && d->shards.ready[k] &&
			d->view.shard[k].state != CLUSTER_NOT_OWNED;
}

/* Clustered, at each wake of the lease thread and each tick: the view
 * taken, given to the rules side (shards_view_changed(): the rule state
 * of shards lost forgotten, of shards taken asked for; the pipeline's
 * verdicts read it), to the sessions (a shard's session starts once its
 * rule state is restored), and what the sessions report told to the
 * lease thread. A fatal misconfiguration found by the
 * thread ends cordond. Returns 0 or -EINVAL (fatal). */
static int
cluster_step(struct daemon *d, int64_t now)
{
	struct sessions_report r;
	const char *fatal;

	if (!d->cluster)
		return 0;
	if ((fatal = cluster_fatal(d->cluster)) != NULL) {
		log_err("cluster: %s", fatal);
		return -EINVAL;
	}
	cluster_view(d->cluster, &d->view);
	shards_view_changed(d, &d->view);
	shards_ready(d);
	sessions_apply(d->sessions, &d->view, d->ready, now);
	for (int k = 0; k < d->shards.nshards; k++) {
		struct sessions_shard_stats st;

		sessions_shard_stats(d->sessions, k, &st);
		d->shards.session_up[k] = st.connected;
	}
	while (sessions_next_report(d->sessions, &r)) {
		if (r.kind == SESSIONS_LOST) {
			log_warn(
				"shard %d: its session was taken over by another instance: the shard"
				" is no longer ours",
				r.shard);
			cluster_session_lost(d->cluster, r.shard, r.epoch);
		} else {
			d->release_wait[r.shard] = true;
			d->release_pos[r.shard] = r.end_pos;
			d->release_epoch[r.shard] = r.epoch;
		}
	}
	return 0;
}

/* Clustered, each turn: a shard whose session ended is released once its
 * records are through the rules and in PostgreSQL with their alerts (the
 * next owner loads its rule state from there). A release is about the
 * lease the session ran under (not a newer one of the same shard), and
 * takes the shard out of the rules' scope at once: the timers of the next
 * tick, which runs before the next cluster_step(), must not act for it. */
static void
release_passed(struct daemon *d)
{
	uint64_t rules_pos;
	bool released = false;

	if (!d->cluster)
		return;
	handover_cuts(d); /* discovery: cuts whose records are committed, recorded */
	reseeds_due(d);
	rules_pos = spool_reader_pos(d->pl.rules_rd);
	for (int k = 0; k < CLUSTER_MAX_SHARDS; k++) {
		if (!d->release_wait[k] || d->pl.committed < d->release_pos[k] ||
		    rules_pos < d->release_pos[k])
			continue;
		/* Shard 0's cuts are written before its lease goes: its next
		 * owner would otherwise pass those sites until their markers
		 * came again. */
		if (k == 0 && (d->ncuts || registry_handovers_pending(d->registry)))
			continue;
		d->release_wait[k] = false;
		log_notice("shard %d: its records are through the rules and in PostgreSQL:"
			   " releasing the lease",
			   k);
		cluster_released(d->cluster, k, d->release_epoch[k]);
		released = true;
	}
	if (released) { /* NOT_OWNED in the thread's view already */
		cluster_view(d->cluster, &d->view);
		shards_view_changed(d, &d->view);
		shards_ready(d);
	}
}

/* One turn of the loop: one wait, then every step in this order (PgBouncer's
 * main_loop_once()). Returns 0 to go on, 1 when the drain is over, or
 * -errno. */
static int
loop_once(struct daemon *d)
{
	struct wakeups w;
	uint64_t before;
	int64_t now;
	int err;

	if ((err = wait_events(d, &w)) < 0)
		return err;
	if (w.signal)
		handle_signal(d); /* SIGTERM, SIGINT: stop intake, drain; SIGHUP: reload() */
	if (w.registered) {
		take_register(d); /* a new register snapshot; at start the rule state */
		take_seeds(d);	  /* clustered: the rule state of shards taken */
	}
	if (w.tick)
		on_tick(d); /* broker, clocks, spool health, status, timer rules */
	if ((w.clustered || w.tick) && (err = cluster_step(d, clocks_mono_ms())) < 0)
		return err; /* clustered: the view to the sessions, their reports */
	now = clocks_mono_us();
	before = d->pl.nrecords;
	pipeline_pump(&d->pl); /* committed batch back, rules, catch-up, flush */
	release_passed(d);     /* clustered: shards whose records are through */
	if (w.woken || w.polled) {
		/* Pause intake within a poll, not a tick, of crossing the mark: the
		 * receive thread must never reach the spool's hard limit, where it
		 * would wait for space inside Paho's callback, holding Paho's lock. */
		intake_check_space(&d->intake, d->stopping);
		moderate_wakes(d, w.woken, now, before);
	}
	if (d->stopping)
		return drain_step(d);
	return 0;
}

int
daemon_run(struct config *cfg, const char *config_path)
{
	struct daemon d = { .cfg = cfg, .config_path = config_path };
	int rc;

	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	if (cfg->cluster_shards > 0)
		log_notice("cordond started: broker %s, spool %s, %lld shards shared through"
			   " PostgreSQL",
			   cfg->mqtt_uri, cfg->spool_dir, (long long)cfg->cluster_shards);
	else
		log_notice("cordond started: broker %s, spool %s", cfg->mqtt_uri, cfg->spool_dir);
	while ((rc = loop_once(&d)) == 0)
		;
	status_log_stats(&d.status);
	teardown(&d);
	log_notice("cordond stopped");
	return rc < 0 ? 1 : 0;
}
