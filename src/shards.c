/* shards.c - the shards a clustered instance acts for: readiness of
 * their rule state, the verdict on a record's site, the rules' scope.
 * See shards.h. */
#include "shards.h"

#include <string.h>

#include "handover.h"
#include "registry.h"

void
shards_init(struct shards *s, int nshards)
{
	memset(s, 0, sizeof(*s));
	s->nshards = nshards < 0 ? 0 : nshards > CLUSTER_MAX_SHARDS ? CLUSTER_MAX_SHARDS : nshards;
}

static bool
is_owned(const struct cluster_shard *c)
{
	return c->state == CLUSTER_OWNED || c->state == CLUSTER_RELEASING;
}

void
shards_set_discovery(struct shards *s, bool discovery)
{
	s->discovery = discovery;
}

void
shards_set_register(struct shards *s, const struct registry_snapshot *reg)
{
	s->reg = reg;
}

int
shards_home_of(const struct shards *s, const char *site)
{
	const struct reg_site *r;

	if (s->nshards == 0)
		return -1;
	if (!s->discovery)
		return cluster_shard_of(site, s->nshards);
	r = s->reg ? registry_site(s->reg, site) : NULL;
	return r && (r->handover & HANDOVER_DISCOVERY_CUT) ? cluster_shard_of(site, s->nshards) : 0;
}

bool
shards_reseed(struct shards *s, int shard)
{
	bool was;

	if (shard < 0 || shard >= s->nshards || !s->have_view || !is_owned(&s->view.shard[shard]))
		return false;
	was = s->ready[shard];
	s->ready[shard] = false;
	s->asked[shard] = s->view.shard[shard].epoch;
	return was;
}

void
shards_apply_view(struct shards *s, const struct cluster_view *v, struct shards_change *ret)
{
	ret->nlost = ret->nwanted = 0;
	for (int i = 0; i < s->nshards; i++) {
		const struct cluster_shard *now = i < v->nshards ? &v->shard[i] : NULL;
		bool owned = now && is_owned(now);
		int64_t epoch = owned ? now->epoch : 0;

		/* Held for an epoch that is not the one owned now: stale. */
		if ((s->ready[i] || s->asked[i]) && s->asked[i] != epoch) {
			if (s->ready[i])
				ret->lost[ret->nlost++] = i;
			s->ready[i] = false;
			s->asked[i] = 0;
		}
		if (owned && !s->ready[i] && s->asked[i] != epoch) {
			s->asked[i] = epoch;
			ret->wanted[ret->nwanted++] = i;
		}
	}
	s->view = *v;
	/* Until PostgreSQL answered the cluster thread once and it had its
	 * first chance to take shards (past the join delay: the shards this
	 * instance owned before are taken back then), owning nothing means
	 * nothing yet: the records of a spool replayed at start wait. A stop
	 * before that takes nothing: they are stored, not judged. */
	if (v->db_ok && (v->joined || v->stopped))
		s->have_view = true;
}

bool
shards_seed_wanted(const struct shards *s, int shard, int64_t epoch)
{
	return shard >= 0 && shard < s->nshards && s->have_view && epoch > 0 &&
		s->asked[shard] == epoch && is_owned(&s->view.shard[shard]) &&
		s->view.shard[shard].epoch == epoch;
}

bool
shards_seed_restored(struct shards *s, int shard, int64_t epoch)
{
	if (!shards_seed_wanted(s, shard, epoch))
		return false;
	s->ready[shard] = true;
	return true;
}

void
shards_set_now(struct shards *s, int64_t now_ms)
{
	s->now_ms = now_ms;
}

enum shards_verdict
shards_verdict(const struct shards *s, const char *site, int source, int *ret_shard,
	       enum shards_why *ret_why)
{
	int shard;

	*ret_shard = -1;
	*ret_why = SHARDS_WHY_NONE;
	if (s->nshards == 0 || !site || !site[0])
		return SHARDS_JUDGE;
	shard = shards_home_of(s, site);
	*ret_shard = shard;
	if (!s->have_view) {
		*ret_why = SHARDS_WHY_NO_VIEW;
		return SHARDS_WAIT;
	}
	if (source >= 0 && source < s->nshards && source != shard) {
		*ret_shard = source;
		if (source == 0 || shard != 0 || !s->reg || !registry_site(s->reg, site)) {
			*ret_why = SHARDS_WHY_OTHER_STREAM;
			return SHARDS_STORE_ONLY;
		}
		/* Shard `source` took the site over; shard 0 has its state. */
		if (!is_owned(&s->view.shard[source])) {
			*ret_why = SHARDS_WHY_NOT_OWNED;
			return SHARDS_STORE_ONLY;
		}
		if (!is_owned(&s->view.shard[0]) || !s->ready[0]) {
			*ret_why = SHARDS_WHY_HANDOVER;
			return SHARDS_WAIT;
		}
		shard = source;
	}
	if (!is_owned(&s->view.shard[shard])) {
		*ret_why = SHARDS_WHY_NOT_OWNED;
		return SHARDS_STORE_ONLY;
	}
	if (!s->ready[shard]) {
		*ret_why = SHARDS_WHY_LOADING;
		return SHARDS_WAIT;
	}
	if (!cluster_may_act(&s->view, shard, s->now_ms)) {
		*ret_why = SHARDS_WHY_UNSURE;
		return SHARDS_WAIT;
	}
	return SHARDS_JUDGE;
}

bool
shards_in_scope(void *ctx, const char *site)
{
	const struct shards *s = ctx;
	int shard;

	if (s->nshards == 0)
		return true;
	shard = shards_home_of(s, site);
	return s->have_view && s->ready[shard] && cluster_may_act(&s->view, shard, s->now_ms) &&
		(s->now_ms < s->view.shard[shard].deadline_ms || s->session_up[shard]);
}

bool
shards_holds(void *ctx, const char *site)
{
	const struct shards *s = ctx;

	return s->nshards == 0 || s->ready[shards_home_of(s, site)];
}

int64_t
shards_epoch_of(const struct shards *s, const char *site, int *ret_shard)
{
	int shard;

	*ret_shard = -1;
	if (s->nshards == 0 || !s->have_view)
		return 0;
	shard = shards_home_of(s, site);
	*ret_shard = shard;
	return s->view.shard[shard].epoch;
}

const char *
shards_why_text(enum shards_why why)
{
	switch (why) {
	case SHARDS_WHY_NOT_OWNED: return "not owned";
	case SHARDS_WHY_NO_VIEW: return "no lease view yet";
	case SHARDS_WHY_LOADING: return "its rule state loading";
	case SHARDS_WHY_UNSURE: return "its lease past the deadline, renewal under way";
	case SHARDS_WHY_HANDOVER: return "taken over from shard 0, whose owner has not said so yet";
	case SHARDS_WHY_OTHER_STREAM: return "a copy from a stream that no longer serves the site";
	case SHARDS_WHY_NONE: break;
	}
	return "";
}
