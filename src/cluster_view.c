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
