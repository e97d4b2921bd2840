/* sessions.c - the instance's own MQTT client and its shard sessions
 * (sessions.h, docs/scaling.md). */
#include "sessions.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handover.h"
#include "log.h"
#include "registry.h"
#include "replay.h"
#include "topics.h"

/* Reports waiting for the daemon: at most one of each kind per shard. */
#define REPORTS_MAX (2 * CLUSTER_MAX_SHARDS)
/* A shard's hand-over markers are published again this often while
 * PostgreSQL does not say shard 0's stream passed one (ms): a marker
 * that shard 0's owner consumed and could not record (a crash) is
 * followed by another. */
#define MARKER_AGAIN_MS 5000
/* How often a shard with nothing to mark looks again (ms). */
#define MARKER_LOOK_MS 1000

struct sessions;

struct shard {
	struct sessions *ss; /* for mine() */
	int k;
	/* The live session (NULL: none), and one ending (NULL: none); a
	 * new session waits for the ending one (the same client id, the same
	 * files). Changed under ss->lock (the sync thread reads them). */
	struct mqtt_client *c, *ending;
	/* Their hand-over gates ([cluster] discovery; NULL: none), freed
	 * after their client. */
	struct handover *gate, *ending_gate;
	int64_t marker_at; /* monotonic ms: markers may be published from then */
	uint64_t markers;  /* markers published since start */
	struct log_ratelimit marker_rl;
	int64_t epoch;	     /* the lease epoch `c` runs under */
	bool report_stop;    /* report SESSIONS_STOPPED once `ending` is ended */
	bool stop_reported;  /* reported for this RELEASING spell */
	bool lost_reported;  /* `c` was reported taken over */
	int64_t lost_epoch;  /* the epoch of the session taken over: not again under it */
	int64_t down_since;  /* monotonic ms `c` was first seen down while wanted up; 0: not */
	int hold;	     /* enum mqtt_client_hold as last set */
	uint64_t received;   /* of the sessions ended */
	uint64_t connects;   /* of the sessions ended */
	uint64_t taken_over; /* of the sessions ended */
};

struct sessions {
	struct spool *spool;
	int wake_fd;
	const struct config *cfg;  /* the current one (sessions_reconfigure) */
	char *root;		   /* fixed at start, as the topic root is */
	int nshards;		   /* 0: not clustered */
	bool discovery;		   /* [cluster] discovery: shard 0 takes every site */
	struct registry *registry; /* hand-over steps are recorded through it */
	struct mqtt_client *instance;
	bool instance_dropped;	/* mqtt_client_drop_inbound(instance) was called */
	uint32_t replay_topics; /* each session's bound: a fair share of the one */
	bool paused;

	/* The last view and ready flags (sessions_apply). */
	struct cluster_view view;
	bool ready[CLUSTER_MAX_SHARDS];
	bool have_view;

	struct shard shard[CLUSTER_MAX_SHARDS];

	/* The register's sites (copies in `pool`): in its order (by_reg), and
	 * by shard (names: names[first[k] .. first[k+1]) are shard k's). */
	char *pool;
	const char **by_reg, **names;
	unsigned *flags;     /* each name's reg_site.handover (names' order) */
	unsigned *reg_flags; /* the same in by_reg's order */
	size_t nnames;
	size_t first[CLUSTER_MAX_SHARDS + 1];

	/* The inbound counters of the sessions ended (add_inbound()), so that
	 * the totals never go back. */
	struct mqtt_client_stats ended;

	struct sessions_report reports[REPORTS_MAX];
	size_t rhead, rcount;
	/* Shard 0's gate's cuts, for the daemon (sessions_next_cut()): at
	 * most one per registered site between two takes. */
	struct handover_cut *cuts;
	size_t ncuts, cuts_cap, cuts_taken;
	uint64_t cuts_total;
	uint64_t released;

	/* The sync thread's passes (sessions_save_replays()) take a copy of
	 * the client pointers under `lock` and set `syncing`; a client is
	 * freed only while no pass runs. */
	pthread_mutex_t lock;
	int syncing;
};

int
sessions_create(const struct config *cfg, struct spool *spool, int wake_fd,
		struct mqtt_client *instance, struct sessions **ret_sessions)
{
	struct sessions *ss = calloc(1, sizeof(*ss));

	if (!ss || !(ss->root = strdup(cfg->topic_root))) {
		free(ss);
		return -ENOMEM;
	}
	ss->spool = spool;
	ss->wake_fd = wake_fd;
	ss->cfg = cfg;
	ss->instance = instance;
	ss->nshards = (int)cfg->cluster_shards;
	if (ss->nshards > CLUSTER_MAX_SHARDS)
		ss->nshards = CLUSTER_MAX_SHARDS;
	ss->discovery = ss->nshards > 0 && cfg->cluster_discovery;
	/* Each shard's sites are a fair share of the city's: so is the bound
	 * of its replay memory (at least 1,024 topics). */
	ss->replay_topics = ss->nshards ? REPLAY_MAX_TOPICS / (uint32_t)ss->nshards : 0;
	if (ss->nshards && ss->replay_topics < 1024)
		ss->replay_topics = 1024;
	for (int k = 0; k < CLUSTER_MAX_SHARDS; k++) {
		ss->shard[k].ss = ss;
		ss->shard[k].k = k;
		ss->shard[k].hold = -1;
		ss->shard[k].lost_epoch = -1;
		ss->shard[k].marker_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1, 60);
	}
	pthread_mutex_init(&ss->lock, NULL);
	*ret_sessions = ss;
	return 0;
}

void
sessions_set_registry(struct sessions *ss, struct registry *registry)
{
	ss->registry = registry;
}

void
sessions_reconfigure(struct sessions *ss, const struct config *cfg)
{
	ss->cfg = cfg;
}

struct mqtt_client *
sessions_instance(struct sessions *ss)
{
	return ss->instance;
}

static void
report(struct sessions *ss, enum sessions_report_kind kind, int shard, uint64_t end_pos)
{
	if (ss->rcount == REPORTS_MAX) /* cannot happen: one of each per shard */
		return;
	ss->reports[(ss->rhead + ss->rcount++) % REPORTS_MAX] = (struct sessions_report){
		.kind = kind, .shard = shard, .end_pos = end_pos, .epoch = ss->shard[shard].epoch
	};
}

bool
sessions_next_report(struct sessions *ss, struct sessions_report *ret)
{
	if (!ss->rcount)
		return false;
	*ret = ss->reports[ss->rhead];
	ss->rhead = (ss->rhead + 1) % REPORTS_MAX;
	ss->rcount--;
	return true;
}

/* Whether a spool record's topic is a site of the shard (the restore of
 * a session's replay memory; its publish thread). */
static bool
mine(void *arg, const char *topic, size_t len)
{
	const struct shard *sh = arg;
	struct topic_parts tp;
	char site[TOPIC_MAX_BYTES];

	if (topics_parse(topic, len, sh->ss->root, &tp) == -ENOENT || tp.site_len >= sizeof(site))
		return false;
	memcpy(site, tp.site, tp.site_len);
	site[tp.site_len] = '\0';
	return cluster_shard_of(site, sh->ss->nshards) == sh->k;
}

/* Sets shard k's sites of the register on its session; logs what could
 * not be subscribed to. */
static void give_gate(struct sessions *ss, struct shard *sh);

static void
give_sites(struct sessions *ss, struct shard *sh)
{
	size_t n = ss->first[sh->k + 1] - ss->first[sh->k], skipped = 0;
	int err;

	if (!sh->c)
		return;
	/* Its gate first: a site new to a shard session holds until its
	 * marker before the SUBSCRIBE can bring anything. */
	give_gate(ss, sh);
	if (ss->discovery && sh->k == 0)
		return; /* every site, by the wildcard filters */
	err = mqtt_client_set_sites(sh->c, ss->names + ss->first[sh->k], n, &skipped);
	if (err < 0)
		log_err("shard %d: cannot change its session's sites: %s; they change at the next"
			" change of the register",
			sh->k, strerror(-err));
	else if (skipped)
		log_err("shard %d: %zu of its %zu sites cannot be subscribed to (not a topic"
			" level, or beyond %d sites a shard: raise [cluster] shards); their"
			" messages do not reach cordond",
			sh->k, skipped, n, MQTT_SUBS_MAX_SITES);
}

/* Shard k's gate gets the sites it is about (handover.h): shard 0's,
 * every registered site of another shard; shard k's, its own. Sites new
 * to a shard's gate with no marker sent yet are recorded as
 * HANDOVER_SENT in PostgreSQL, before any marker of theirs. */
static void
give_gate(struct sessions *ss, struct shard *sh)
{
	size_t from = sh->k == 0 ? ss->first[1] : ss->first[sh->k];
	size_t to = sh->k == 0 ? ss->nnames : ss->first[sh->k + 1];
	struct handover_site *v;
	struct mqtt_subs_list send = { 0, NULL };
	int err;

	if (!sh->gate)
		return;
	v = malloc((to > from ? to - from : 1) * sizeof(*v));
	if (!v) {
		log_err("shard %d: out of memory giving its gate the register's sites: it keeps"
			" those it had",
			sh->k);
		return;
	}
	for (size_t i = from; i < to; i++)
		v[i - from] = (struct handover_site){ ss->names[i], ss->flags[i] };
	err = handover_set_sites(sh->gate, v, to - from, sh->k ? &send : NULL);
	free(v);
	if (err < 0) {
		log_err("shard %d: cannot give its gate the register's sites: %s; it keeps those"
			" it had",
			sh->k, strerror(-err));
		return;
	}
	for (size_t i = 0; i < send.n; i++)
		if (registry_note_handover(ss->registry, send.names[i], sh->k, HANDOVER_SENT) < 0)
			log_err("shard %d: out of memory recording the hand-over of site %s: its"
				" messages come through shard 0 until the register changes again",
				sh->k, send.names[i]);
	if (send.n)
		log_info("shard %d: %zu sites to take over from shard 0's stream", sh->k, send.n);
	free(send.names);
	sh->marker_at = 0;
}

struct by_shard {
	int k;
	const char *name;
	unsigned flags;
};

static int
cmp_by_shard(const void *a, const void *b)
{
	const struct by_shard *x = a, *y = b;

	return x->k != y->k ? (x->k < y->k ? -1 : 1) : strcmp(x->name, y->name);
}

void
sessions_set_register(struct sessions *ss, const struct registry_snapshot *reg)
{
	size_t bytes = 0, n = reg->nsites, i;
	const char **names = NULL, **by_reg = NULL;
	unsigned *flags = NULL, *reg_flags = NULL;
	struct by_shard *tmp = NULL;
	char *pool = NULL, *p;
	bool same = ss->by_reg && n == ss->nnames, flags_same = true;

	if (!ss->nshards)
		return;
	/* The same sites as the last snapshot (a change of cards): nothing,
	 * but to the gates when a hand-over moved on. */
	for (i = 0; same && i < n; i++)
		same = strcmp(reg->sites[i].site, ss->by_reg[i]) == 0;
	for (i = 0; same && ss->discovery && i < n; i++)
		flags_same = flags_same && reg->sites[i].handover == ss->reg_flags[i];
	if (same && flags_same)
		return;
	for (i = 0; i < n; i++)
		bytes += strlen(reg->sites[i].site) + 1;
	names = malloc((n ? n : 1) * sizeof(*names));
	by_reg = malloc((n ? n : 1) * sizeof(*by_reg));
	flags = malloc((n ? n : 1) * sizeof(*flags));
	reg_flags = malloc((n ? n : 1) * sizeof(*reg_flags));
	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	pool = malloc(bytes ? bytes : 1);
	if (!names || !by_reg || !flags || !reg_flags || !tmp || !pool) {
		free(names);
		free(by_reg);
		free(flags);
		free(reg_flags);
		free(tmp);
		free(pool);
		log_err("out of memory taking the register's sites for the shard sessions: they"
			" keep the sites they had");
		return;
	}
	for (i = 0, p = pool; i < n; i++) {
		size_t len = strlen(reg->sites[i].site) + 1;

		memcpy(p, reg->sites[i].site, len);
		by_reg[i] = p;
		reg_flags[i] = reg->sites[i].handover;
		tmp[i] = (struct by_shard){ cluster_shard_of(p, ss->nshards), p,
					    reg->sites[i].handover };
		p += len;
	}
	/* By shard, then name: one range per shard. */
	qsort(tmp, n, sizeof(*tmp), cmp_by_shard);
	memset(ss->first, 0, sizeof(ss->first));
	for (i = 0; i < n; i++) {
		names[i] = tmp[i].name;
		flags[i] = tmp[i].flags;
		ss->first[tmp[i].k + 1]++;
	}
	free(tmp);
	for (int k = 0; k < CLUSTER_MAX_SHARDS; k++)
		ss->first[k + 1] += ss->first[k];
	free(ss->names);
	free(ss->by_reg);
	free(ss->flags);
	free(ss->reg_flags);
	free(ss->pool);
	ss->names = names;
	ss->by_reg = by_reg;
	ss->flags = flags;
	ss->reg_flags = reg_flags;
	ss->pool = pool;
	ss->nnames = n;
	for (int k = 0; k < ss->nshards; k++) {
		if (same) /* only the hand-overs moved on */
			give_gate(ss, &ss->shard[k]);
		else
			give_sites(ss, &ss->shard[k]);
	}
}

/* A gate's cut: the spool's end (Paho's thread, under the gate's lock). */
static uint64_t
gate_end(void *arg)
{
	return spool_end(arg);
}

/* Shard k's session, under the lease of epoch `epoch`: created, given its
 * sites, started (its publish thread restores its memory, makes Paho's
 * client, connects). A failure is logged; the next look tries again. */
static void
start_session(struct sessions *ss, struct shard *sh, int64_t epoch)
{
	char id[256], dir[32];
	struct mqtt_client_options o = {
		.client_id = id,
		.dir = dir,
		.inbound = ss->discovery && sh->k == 0 ? MQTT_CLIENT_INBOUND_WILDCARD :
							 MQTT_CLIENT_INBOUND_SITES,
		.session = true,
		.epoch = epoch,
		.mine = mine,
		.mine_arg = sh,
		.replay_topics = ss->replay_topics,
		.handover_filters = ss->discovery,
		.record_flags = SPOOL_SOURCE(sh->k),
	};
	struct handover *gate = NULL;
	struct mqtt_client *c;
	int err;

	cluster_session_id(ss->cfg->cluster_session_prefix, sh->k, id, sizeof(id));
	snprintf(dir, sizeof(dir), "shard-%03d", sh->k);
	if (ss->discovery &&
	    (err = handover_create(ss->root, sh->k == 0 ? HANDOVER_DISCOVERY : HANDOVER_SHARD,
				   gate_end, ss->spool, &gate)) < 0) {
		log_err("shard %d: cannot make its session's gate: %s; trying again", sh->k,
			strerror(-err));
		return;
	}
	o.gate = gate;
	err = mqtt_client_create_with(ss->cfg, ss->spool, ss->wake_fd, &o, &c);
	if (err < 0) {
		log_err("shard %d: cannot make its session %s: %s; trying again", sh->k, id,
			strerror(-err));
		handover_destroy(gate);
		return;
	}
	if (ss->paused)
		mqtt_client_pause(c);
	pthread_mutex_lock(&ss->lock);
	sh->c = c;
	pthread_mutex_unlock(&ss->lock);
	sh->gate = gate;
	sh->epoch = epoch;
	sh->lost_reported = false;
	sh->down_since = 0;
	sh->hold = -1;
	give_sites(ss, sh);
	if ((err = mqtt_client_start(c)) < 0)
		log_err("shard %d: cannot start its session: %s", sh->k, strerror(-err));
	if (ss->discovery && sh->k == 0)
		log_notice("shard %d: its session %s starts (lease epoch %" PRId64 ", every site:"
			   " those no other shard has taken over)",
			   sh->k, id, epoch);
	else
		log_notice("shard %d: its session %s starts (lease epoch %" PRId64 ", %zu sites)",
			   sh->k, id, epoch, mqtt_client_sites(c));
}

/* Ends shard k's live session (through its publish thread); a RELEASING
 * shard's is reported once ended (`report_stop`). */
static void
end_session(struct shard *sh, bool report_stop, const char *why)
{
	if (!sh->c)
		return;
	log_notice("shard %d: its session ends (%s)", sh->k, why);
	mqtt_client_close_begin(sh->c, SESSIONS_CLOSE_MS);
	pthread_mutex_lock(&sh->ss->lock);
	sh->ending = sh->c;
	sh->c = NULL;
	pthread_mutex_unlock(&sh->ss->lock);
	sh->ending_gate = sh->gate;
	sh->gate = NULL;
	sh->report_stop = report_stop;
}

static void add_inbound(struct mqtt_client_stats *to, const struct mqtt_client_stats *st);

/* Moves a gate's cuts to the daemon's queue. Out of memory, a cut stays
 * in the gate until the next take (a gate being freed loses it: the
 * site stays "not known" in PostgreSQL, and its markers go on). */
static void
take_cuts(struct sessions *ss, struct handover *gate)
{
	struct handover_cut cut;

	if (!gate)
		return;
	if (ss->cuts_taken == ss->ncuts)
		ss->ncuts = ss->cuts_taken = 0;
	for (;;) {
		if (ss->ncuts == ss->cuts_cap) {
			size_t cap = ss->cuts_cap ? 2 * ss->cuts_cap : 16;
			struct handover_cut *n = realloc(ss->cuts, cap * sizeof(*n));

			if (!n) {
				log_err("out of memory taking shard 0's hand-over cuts");
				return;
			}
			ss->cuts = n;
			ss->cuts_cap = cap;
		}
		if (!handover_next_cut(gate, &cut))
			return;
		ss->cuts[ss->ncuts++] = cut;
		ss->cuts_total++;
	}
}

bool
sessions_next_cut(struct sessions *ss, struct handover_cut *ret)
{
	if (ss->cuts_taken == ss->ncuts)
		return false;
	*ret = ss->cuts[ss->cuts_taken++];
	return true;
}

/* Publishes shard k's hand-over markers (handover.h), once its session is
 * connected with every SUBACK in: of each site of the shard whose
 * marker may be sent (HANDOVER_SENT in PostgreSQL) and that the gate
 * still holds, or that PostgreSQL does not yet say shard 0's stream
 * passed. Again every MARKER_AGAIN_MS while there are such sites. */
static void
publish_markers(struct sessions *ss, struct shard *sh, int64_t now)
{
	struct mqtt_client_stats st;
	char topic[TOPIC_MAX_BYTES], payload[160];
	size_t sent = 0, refused = 0;
	int len;

	if (!sh->gate || sh->k == 0 || now < sh->marker_at)
		return;
	mqtt_client_get_stats(sh->c, &st);
	if (!st.connected || st.subs_pending)
		return;
	len = snprintf(payload, sizeof(payload),
		       "{\"shard\":%d,\"epoch\":%" PRId64 ",\"instance\":\"%.64s\"}", sh->k,
		       sh->epoch, ss->cfg->mqtt_client_id);
	for (size_t i = ss->first[sh->k]; i < ss->first[sh->k + 1]; i++) {
		unsigned f = ss->flags[i];

		if (!(f & HANDOVER_SENT) ||
		    ((f & HANDOVER_DISCOVERY_CUT) && !handover_is_holding(sh->gate, ss->names[i])))
			continue;
		/* Not while a filter of the site is refused (or the site was
		 * left out of the set): shard 0 would cut at a marker this
		 * session cannot follow. */
		if (!mqtt_client_site_granted(sh->c, ss->names[i])) {
			refused++;
			continue;
		}
		/* Through the instance's own client, not the session (a
		 * session's own message comes back to it only with No Local
		 * off: not relied on); the SUBACK came before, so the marker
		 * comes after it. */
		if (topics_build(topic, sizeof(topic), ss->root, TOPIC_HANDOVER, ss->names[i],
				 NULL) < 0 ||
		    mqtt_client_publish(ss->instance, topic, payload, (size_t)len, 1, 0) < 0)
			continue; /* again at the next round */
		sent++;
	}
	sh->markers += sent;
	sh->marker_at = now + (sent || refused ? MARKER_AGAIN_MS : MARKER_LOOK_MS);
	if (sent)
		log_info("shard %d: %zu hand-over markers published", sh->k, sent);
	if (refused)
		log_limited(&sh->marker_rl, LOG_LEVEL_WARNING,
			    "shard %d: %zu sites not handed over from shard 0's stream: a filter of"
			    " theirs is refused by the broker (see the subscription warnings)",
			    sh->k, refused);
}

/* Frees shard k's ended session once its end is done and no sync pass
 * holds it; reports it if asked. Returns whether no session is ending. */
static bool
reap(struct sessions *ss, struct shard *sh)
{
	struct mqtt_client_stats st;
	struct mqtt_client *c = sh->ending;

	if (!c)
		return true;
	if (!mqtt_client_is_closed(c))
		return false;
	pthread_mutex_lock(&ss->lock);
	if (ss->syncing) {
		pthread_mutex_unlock(&ss->lock);
		return false;
	}
	sh->ending = NULL;
	pthread_mutex_unlock(&ss->lock);
	mqtt_client_get_stats(c, &st);
	st.connected = 0;     /* its SUBACKs are gone with it */
	st.replay_topics = 0; /* and its memory */
	st.spool_failing = 0;
	add_inbound(&ss->ended, &st);
	sh->received += st.received;
	sh->connects += st.connects;
	sh->taken_over += st.taken_over;
	mqtt_client_destroy(c); /* its publish thread is idle: no wait on Paho */
	take_cuts(ss, sh->ending_gate);
	handover_destroy(sh->ending_gate);
	sh->ending_gate = NULL;
	if (sh->report_stop) {
		/* Nothing of the session can be appended any more. */
		report(ss, SESSIONS_STOPPED, sh->k, spool_end(ss->spool));
		sh->stop_reported = true;
		sh->report_stop = false;
		ss->released++;
		log_notice("shard %d: its session ended; the lease is released once the rules"
			   " have passed spool position %" PRIu64,
			   sh->k, spool_end(ss->spool));
	}
	return true;
}

/* What the lease allows the live session (cluster_may_act()): connect
 * before the deadline; past it, keep a live link but reconnect no more
 * while PostgreSQL is away (nobody can take the lease then, and a
 * session resumed elsewhere is fenced by the broker), disconnect when it
 * answers (the lease is likely gone: what the session would take could
 * not go through our rules). */
static void
hold_session(struct sessions *ss, struct shard *sh, const struct cluster_shard *vs, int64_t now)
{
	int hold = now < vs->deadline_ms ? MQTT_CLIENT_GO :
		!ss->view.db_ok		 ? MQTT_CLIENT_NO_CONNECT :
					   MQTT_CLIENT_DOWN;

	if (hold == sh->hold)
		return;
	if (hold == MQTT_CLIENT_DOWN)
		log_warn("shard %d: the lease passed its deadline without a renewal: its session"
			 " disconnects until the lease is renewed or lost",
			 sh->k);
	else if (hold == MQTT_CLIENT_NO_CONNECT)
		log_warn("shard %d: the lease passed its deadline while PostgreSQL is away: its"
			 " session stays up, but does not reconnect until the lease is renewed",
			 sh->k);
	else if (sh->hold >= 0)
		log_notice("shard %d: the lease is renewed: its session connects again", sh->k);
	sh->hold = hold;
	mqtt_client_hold(sh->c, (enum mqtt_client_hold)hold);
}

/* One shard against the last view. */
static void
step_shard(struct sessions *ss, struct shard *sh, int64_t now)
{
	const struct cluster_shard *vs = &ss->view.shard[sh->k];
	bool idle = reap(ss, sh);

	if (sh->c && mqtt_client_is_taken_over(sh->c) && !sh->lost_reported) {
		/* Another instance resumed the session: its lease is newer. */
		report(ss, SESSIONS_LOST, sh->k, 0);
		sh->lost_reported = true;
		sh->lost_epoch = sh->epoch;
		end_session(sh, false, "taken over by another instance");
	}
	if (vs->state != CLUSTER_RELEASING)
		sh->stop_reported = false;
	switch (vs->state) {
	case CLUSTER_NOT_OWNED: end_session(sh, false, "the lease is not ours"); break;
	case CLUSTER_RELEASING:
		if (sh->c)
			end_session(sh, true, "the lease is given back");
		else if (sh->ending)
			sh->report_stop = true;
		else if (!sh->stop_reported) { /* never started: nothing to wait for */
			report(ss, SESSIONS_STOPPED, sh->k, spool_end(ss->spool));
			sh->stop_reported = true;
			ss->released++;
		}
		break;
	case CLUSTER_OWNED:
		if (sh->c && sh->epoch != vs->epoch)
			end_session(sh, false, "the lease was taken again under a new epoch");
		if (!sh->c && idle && !sh->ending && ss->ready[sh->k] && now < vs->deadline_ms &&
		    vs->epoch != sh->lost_epoch)
			start_session(ss, sh, vs->epoch);
		break;
	}
	if (sh->c && vs->state != CLUSTER_NOT_OWNED)
		hold_session(ss, sh, vs, now);
	/* Wanted up and not connected: for /healthz, after SESSIONS_DOWN_MS. */
	if (sh->c && vs->state == CLUSTER_OWNED && sh->hold == MQTT_CLIENT_GO && !ss->paused) {
		struct mqtt_client_stats st;

		mqtt_client_get_stats(sh->c, &st);
		if (st.connected)
			sh->down_since = 0;
		else if (!sh->down_since)
			sh->down_since = now;
	} else {
		sh->down_since = 0;
	}
}

static void
step(struct sessions *ss, int64_t now)
{
	if (!ss->have_view)
		return;
	for (int k = 0; k < ss->nshards; k++)
		step_shard(ss, &ss->shard[k], now);
}

void
sessions_apply(struct sessions *ss, const struct cluster_view *v, const bool *ready, int64_t now_ms)
{
	int n = v->nshards < ss->nshards ? v->nshards : ss->nshards;

	if (!ss->nshards)
		return;
	ss->view = *v;
	for (int k = 0; k < ss->nshards; k++) {
		ss->ready[k] = k < n && ready[k];
		if (k >= n) /* not in the view: not ours */
			ss->view.shard[k] = (struct cluster_shard){ .state = CLUSTER_NOT_OWNED };
	}
	ss->view.nshards = ss->nshards;
	ss->have_view = true;
	step(ss, now_ms);
}

/* Clustered: once one of this instance's shard sessions is connected with
 * every SUBACK in, what still comes to the instance's own client (the
 * wildcard subscriptions of a run before clustering, kept by its broker
 * session) is a copy of what the sessions take: dropped, and those
 * subscriptions removed. Until then it is the backlog queued there while
 * cordond was down, and spooled. */
static void
drop_instance_inbound(struct sessions *ss)
{
	struct mqtt_client_stats st;

	if (!ss->nshards || ss->instance_dropped)
		return;
	for (int k = 0; k < ss->nshards; k++) {
		if (!ss->shard[k].c)
			continue;
		mqtt_client_get_stats(ss->shard[k].c, &st);
		if (st.connected && !st.subs_pending) {
			mqtt_client_drop_inbound(ss->instance);
			ss->instance_dropped = true;
			log_info("shard %d's session is subscribed: what still comes to this"
				 " instance's own client (subscriptions of a run before clustering)"
				 " is dropped from now on",
				 k);
			return;
		}
	}
}

void
sessions_tick(struct sessions *ss, int64_t now_ms)
{
	/* The leases' deadlines first: a session whose lease passed its
	 * deadline while the process stood still (SIGSTOP) must not
	 * reconnect at its own tick. */
	step(ss, now_ms);
	mqtt_client_tick(ss->instance, now_ms);
	drop_instance_inbound(ss);
	for (int k = 0; k < ss->nshards; k++) {
		take_cuts(ss, ss->shard[k].gate);
		if (ss->shard[k].c)
			publish_markers(ss, &ss->shard[k], now_ms);
		if (ss->shard[k].c)
			mqtt_client_tick(ss->shard[k].c, now_ms);
		if (ss->shard[k].ending)
			mqtt_client_tick(ss->shard[k].ending, now_ms);
	}
}

int
sessions_count(struct sessions *ss)
{
	int n = 0;

	for (int k = 0; k < ss->nshards; k++)
		n += (ss->shard[k].c != NULL) + (ss->shard[k].ending != NULL);
	return n;
}

/* Whether the instance's own client receives anything. */
static bool
instance_receives(const struct sessions *ss)
{
	return ss->nshards == 0;
}

void
sessions_pause(struct sessions *ss)
{
	ss->paused = true;
	if (instance_receives(ss))
		mqtt_client_pause(ss->instance);
	for (int k = 0; k < ss->nshards; k++)
		if (ss->shard[k].c)
			mqtt_client_pause(ss->shard[k].c);
}

void
sessions_resume(struct sessions *ss)
{
	ss->paused = false;
	if (instance_receives(ss))
		mqtt_client_resume(ss->instance);
	for (int k = 0; k < ss->nshards; k++)
		if (ss->shard[k].c)
			mqtt_client_resume(ss->shard[k].c);
}

void
sessions_want_wake(struct sessions *ss)
{
	mqtt_client_want_wake(ss->instance);
	for (int k = 0; k < ss->nshards; k++) {
		if (ss->shard[k].c)
			mqtt_client_want_wake(ss->shard[k].c);
		if (ss->shard[k].ending)
			mqtt_client_want_wake(ss->shard[k].ending);
	}
}

/* Adds a session's inbound counters to `to` (received, waits, replays;
 * its SUBACKs while it is connected). */
static void
add_inbound(struct mqtt_client_stats *to, const struct mqtt_client_stats *st)
{
	to->received += st->received;
	to->spool_waits += st->spool_waits;
	to->spool_failing |= st->spool_failing;
	to->replayed_retained += st->replayed_retained;
	to->replayed_dup += st->replayed_dup;
	to->gated += st->gated;
	to->replay_note_failed += st->replay_note_failed;
	to->replay_topics += st->replay_topics; /* ended: 0 (see reap) */
	to->replay_evicted += st->replay_evicted;
	if (!st->connected)
		return;
	to->subs_granted += st->subs_granted;
	to->subs_downgraded += st->subs_downgraded;
	to->subs_pending += st->subs_pending;
	if (st->subs_refused && !to->subs_refused)
		memcpy(to->sub_refused, st->sub_refused, sizeof(to->sub_refused));
	to->subs_refused += st->subs_refused;
}

/* The registered sites a live session takes: its set; shard 0's with
 * discovery, its own registered sites (the wildcard filters take them). */
static size_t
session_sites(const struct sessions *ss, const struct shard *sh)
{
	if (ss->discovery && sh->k == 0)
		return ss->first[1] - ss->first[0];
	return mqtt_client_sites(sh->c);
}

void
sessions_get_stats(struct sessions *ss, int64_t now_ms, struct sessions_stats *ret)
{
	struct mqtt_client_stats st;

	memset(ret, 0, sizeof(*ret));
	mqtt_client_get_stats(ss->instance, &ret->mqtt);
	add_inbound(&ret->mqtt, &ss->ended);
	ret->clustered = ss->nshards > 0;
	ret->shards = ss->nshards;
	ret->released = ss->released;
	ret->cuts = ss->cuts_total;
	for (int k = 0; k < ss->nshards; k++) {
		struct shard *sh = &ss->shard[k];
		enum cluster_shard_state state = ss->view.shard[k].state;

		ret->owned += ss->have_view && state != CLUSTER_NOT_OWNED;
		ret->releasing += ss->have_view && state == CLUSTER_RELEASING;
		ret->taken_over += sh->taken_over;
		ret->markers += sh->markers;
		if (sh->gate) {
			struct handover_stats hs;

			handover_get_stats(sh->gate, &hs);
			ret->holding += hs.holding;
		}
		if (sh->ending) {
			mqtt_client_get_stats(sh->ending, &st);
			add_inbound(&ret->mqtt, &st);
			ret->taken_over += st.taken_over;
			ret->sessions++;
		}
		if (!sh->c)
			continue;
		mqtt_client_get_stats(sh->c, &st);
		add_inbound(&ret->mqtt, &st);
		ret->taken_over += st.taken_over;
		ret->sessions++;
		ret->connected += st.connected;
		ret->sites += session_sites(ss, sh);
		if (sh->down_since && now_ms - sh->down_since > SESSIONS_DOWN_MS &&
		    ret->down++ == 0)
			snprintf(ret->down_why, sizeof(ret->down_why),
				 "shard %d's session not connected for %lld s", k,
				 (long long)(now_ms - sh->down_since) / 1000);
	}
	if (ret->mqtt.subs_refused > 1) {
		size_t n = strlen(ret->mqtt.sub_refused);
		char *and = strstr(ret->mqtt.sub_refused, " and ");

		if (and)
			n = (size_t)(and-ret->mqtt.sub_refused);
		snprintf(ret->mqtt.sub_refused + n, sizeof(ret->mqtt.sub_refused) - n,
			 " and %d more", ret->mqtt.subs_refused - 1);
	}
}

void
sessions_shard_stats(struct sessions *ss, int k, struct sessions_shard_stats *ret)
{
	struct mqtt_client_stats st;
	const struct shard *sh;

	memset(ret, 0, sizeof(*ret));
	if (k < 0 || k >= ss->nshards)
		return;
	sh = &ss->shard[k];
	ret->state = ss->have_view ? ss->view.shard[k].state : CLUSTER_NOT_OWNED;
	ret->epoch = ret->state != CLUSTER_NOT_OWNED ? ss->view.shard[k].epoch : 0;
	ret->received = sh->received;
	ret->connects = sh->connects;
	if (sh->ending) {
		mqtt_client_get_stats(sh->ending, &st);
		ret->received += st.received;
		ret->connects += st.connects;
		ret->session = true;
	}
	if (sh->c) {
		mqtt_client_get_stats(sh->c, &st);
		ret->received += st.received;
		ret->connects += st.connects;
		ret->session = true;
		ret->connected = st.connected;
		ret->sites = session_sites(ss, sh);
	}
}

/* The clients a sync pass works on: a copy of the pointers taken under
 * the lock; `syncing` keeps them from being freed meanwhile. */
static size_t
pass_begin(struct sessions *ss, struct mqtt_client **cs)
{
	size_t n = 0;

	pthread_mutex_lock(&ss->lock);
	ss->syncing++;
	cs[n++] = ss->instance;
	for (int k = 0; k < ss->nshards; k++) {
		if (ss->shard[k].c)
			cs[n++] = ss->shard[k].c;
		if (ss->shard[k].ending)
			cs[n++] = ss->shard[k].ending;
	}
	pthread_mutex_unlock(&ss->lock);
	return n;
}

static void
pass_end(struct sessions *ss)
{
	pthread_mutex_lock(&ss->lock);
	ss->syncing--;
	pthread_mutex_unlock(&ss->lock);
}

int
sessions_save_replays(struct sessions *ss)
{
	struct mqtt_client *cs[1 + 2 * CLUSTER_MAX_SHARDS];
	size_t n = pass_begin(ss, cs);
	uint64_t pos;
	int err = 0, e;

	for (size_t i = 0; i < n; i++)
		if ((e = mqtt_client_save_replays(cs[i], &pos)) < 0 && !err)
			err = e;
	pass_end(ss);
	return err;
}

int
sessions_sync_replays(struct sessions *ss)
{
	struct mqtt_client *cs[1 + 2 * CLUSTER_MAX_SHARDS];
	size_t n = pass_begin(ss, cs);
	int err = 0, e;

	for (size_t i = 0; i < n; i++)
		if ((e = mqtt_client_sync_replays(cs[i])) < 0 && !err)
			err = e;
	pass_end(ss);
	return err;
}

uint64_t
sessions_covered(struct sessions *ss)
{
	uint64_t pos = mqtt_client_covered(ss->instance);

	for (int k = 0; k < ss->nshards; k++) {
		struct mqtt_client *c[2] = { ss->shard[k].c, ss->shard[k].ending };

		for (int i = 0; i < 2; i++)
			if (c[i] && mqtt_client_covered(c[i]) < pos)
				pos = mqtt_client_covered(c[i]);
	}
	return pos;
}

void
sessions_stop_begin(struct sessions *ss, int timeout_ms)
{
	mqtt_client_stop_begin(ss->instance, timeout_ms);
	for (int k = 0; k < ss->nshards; k++)
		end_session(&ss->shard[k], false, "cordond stops");
}

bool
sessions_is_stopped(struct sessions *ss)
{
	if (!mqtt_client_is_stopped(ss->instance))
		return false;
	for (int k = 0; k < ss->nshards; k++)
		if (ss->shard[k].c ||
		    (ss->shard[k].ending && !mqtt_client_is_closed(ss->shard[k].ending)))
			return false;
	return true;
}

void
sessions_destroy(struct sessions *ss)
{
	if (!ss)
		return;
	for (int k = 0; k < ss->nshards; k++)
		end_session(&ss->shard[k], false, "cordond stops");
	for (int k = 0; k < ss->nshards; k++) {
		struct shard *sh = &ss->shard[k];

		/* Each end is bounded (its DISCONNECT's timeout); a little more
		 * for the save, then freed whatever (destroy waits for it). */
		for (int i = 0; sh->ending && !mqtt_client_is_closed(sh->ending) &&
		     i < (SESSIONS_CLOSE_MS + 3000) / 10;
		     i++)
			usleep(10000);
		mqtt_client_destroy(sh->ending);
		sh->ending = NULL;
		handover_destroy(sh->ending_gate);
		sh->ending_gate = NULL;
	}
	pthread_mutex_destroy(&ss->lock);
	free(ss->names);
	free(ss->by_reg);
	free(ss->flags);
	free(ss->reg_flags);
	free(ss->cuts);
	free(ss->pool);
	free(ss->root);
	free(ss);
}
