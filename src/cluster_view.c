/* cluster_view.c - the pure part of cluster.h: which shard a site is in,
 * a shard's MQTT client id, and whether a view lets us act on a shard. */
#include "cluster.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

int
cluster_shard_of(const char *site, int nshards)
{
	if (nshards <= 1)
		return 0;
	return (int)(XXH3_64bits(site, strlen(site)) % (uint64_t)nshards);
}

int
cluster_session_id(const char *prefix, int shard, char *buf, size_t len)
{
	return snprintf(buf, len, "%s%03d", prefix, shard);
}

bool
cluster_may_act(const struct cluster_view *v, int shard, int64_t now_ms)
{
	const struct cluster_shard *s;

	if (shard < 0 || shard >= v->nshards)
		return false;
	s = &v->shard[shard];
	if (s->state != CLUSTER_OWNED && s->state != CLUSTER_RELEASING)
		return false;
	/* Past the deadline only while PostgreSQL is away: nobody can take
	 * the lease then, and the broker fences a session resumed elsewhere
	 * (the main loop sets the shard NOT_OWNED through
	 * cluster_session_lost() when it is). */
	return now_ms < s->deadline_ms || !v->db_ok;
}

/* Appends to ret->take the rows of `kind` (expired ones only when
 * `expired_only`) from shard seed on, until `want` are listed. */
static void
take_rows(const struct cluster_plan_input *in, enum cluster_row_kind kind, bool expired_only,
	  int want, struct cluster_plan *ret)
{
	for (int i = 0; i < in->nshards && ret->ntake < want; i++) {
		int s = (int)((in->seed + (unsigned)i) % (unsigned)in->nshards);
		const struct cluster_row *r = &in->rows[s];

		if (r->kind == kind && (!expired_only || r->expired))
			ret->take[ret->ntake++] = s;
	}
}

void
cluster_plan(const struct cluster_plan_input *in, struct cluster_plan *ret)
{
	int n = in->nshards, alive = in->nothers + 1;
	int owned = 0, releasing = 0, floor_share, ceil_share;
	bool starving = false;

	ret->ntake = ret->noffer = 0;
	for (int s = 0; s < n; s++) {
		owned += in->rows[s].kind == CLUSTER_ROW_MINE ||
			in->rows[s].kind == CLUSTER_ROW_RELEASING;
		releasing += in->rows[s].kind == CLUSTER_ROW_RELEASING;
	}
	floor_share = n / alive;
	ceil_share = (n + alive - 1) / alive;
	for (int i = 0; i < in->nothers; i++)
		starving |= in->others[i] < floor_share;
	ret->target = starving ? floor_share : ceil_share;
	if (in->stopping) {
		ret->target = 0;
		for (int s = 0; s < n; s++)
			if (in->rows[s].kind == CLUSTER_ROW_MINE)
				ret->offer[ret->noffer++] = s;
		return;
	}
	if (owned < ret->target) {
		int want = ret->target - owned;

		if (!in->take)
			return;
		if (in->reclaim)
			take_rows(in, CLUSTER_ROW_SELF, false, want, ret);
		take_rows(in, CLUSTER_ROW_FREE, false, want, ret);
		if (in->take_expired) {
			take_rows(in, CLUSTER_ROW_OTHER, true, want, ret);
			if (!in->reclaim)
				take_rows(in, CLUSTER_ROW_SELF, true, want, ret);
		}
		return;
	}
	if (owned > ret->target) {
		int more = owned - ret->target - releasing;

		if (more > in->offer_max - releasing)
			more = in->offer_max - releasing;
		for (int s = n - 1; s >= 0 && ret->noffer < more; s--)
			if (in->rows[s].kind == CLUSTER_ROW_MINE)
				ret->offer[ret->noffer++] = s;
	}
}
