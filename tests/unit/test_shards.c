/* Unit tests of shards.c: a clustered instance's verdict on a record's
 * site, the rules' scope, and what a new lease view changes (which
 * shards' rule state is forgotten, which is asked for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handover.h"
#include "registry.h"
#include "shards.h"

#define NSHARDS 4

/* A site of shard `shard` (found by trying names). */
static void
site_of(int shard, char *buf, size_t len)
{
	for (int i = 0;; i++) {
		snprintf(buf, len, "site-%d", i);
		if (cluster_shard_of(buf, NSHARDS) == shard)
			return;
	}
}

static void
own(struct cluster_view *v, int shard, enum cluster_shard_state st, int64_t epoch, int64_t deadline)
{
	v->shard[shard].state = st;
	v->shard[shard].epoch = st == CLUSTER_NOT_OWNED ? 0 : epoch;
	v->shard[shard].deadline_ms = deadline;
	v->generation++;
}

static struct cluster_view
empty_view(void)
{
	struct cluster_view v;

	memset(&v, 0, sizeof(v));
	v.nshards = NSHARDS;
	v.db_ok = true;
	v.joined = true;
	v.generation = 1;
	return v;
}

static enum shards_verdict
verdict_of(const struct shards *s, const char *site, enum shards_why *why)
{
	int shard;

	return shards_verdict(s, site, -1, &shard, why);
}

/* Not clustered: every site judged, in scope, kept, not fenced. */
static void
not_clustered(void **state)
{
	struct shards s;
	enum shards_why why;
	int shard;

	(void)state;
	shards_init(&s, 0);
	assert_int_equal(verdict_of(&s, "s1", &why), SHARDS_JUDGE);
	assert_true(shards_in_scope(&s, "s1"));
	assert_true(shards_holds(&s, "s1"));
	assert_int_equal(shards_epoch_of(&s, "s1", &shard), 0);
	assert_int_equal(shard, -1);
}

/* Every verdict: no view yet (wait), not owned (stored only), owned and
 * loading (wait), ready (judged), past the deadline with PostgreSQL up
 * (wait) or down (judged), a record of no site (judged). */
static void
verdicts(void **state)
{
	struct shards s;
	struct shards_change ch;
	struct cluster_view v = empty_view();
	char a[32], b[32];
	enum shards_why why;

	(void)state;
	site_of(1, a, sizeof(a));
	site_of(2, b, sizeof(b));
	shards_init(&s, NSHARDS);
	shards_set_now(&s, 1000);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_NO_VIEW);
	assert_int_equal(verdict_of(&s, "", &why), SHARDS_JUDGE);
	assert_int_equal(verdict_of(&s, NULL, &why), SHARDS_JUDGE);
	/* a view while PostgreSQL never answered is no view */
	v.db_ok = false;
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_WAIT);
	/* nor one before the first chance to take shards (the join delay) */
	v.db_ok = true;
	v.joined = false;
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_NO_VIEW);
	v.joined = true;

	own(&v, 1, CLUSTER_OWNED, 7, 5000);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nwanted, 1);
	assert_int_equal(ch.wanted[0], 1);
	assert_int_equal(ch.nlost, 0);
	assert_int_equal(verdict_of(&s, b, &why), SHARDS_STORE_ONLY);
	assert_int_equal(why, SHARDS_WHY_NOT_OWNED);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_LOADING);
	assert_false(shards_in_scope(&s, a));
	/* a seed of another epoch is stale */
	assert_false(shards_seed_restored(&s, 1, 6));
	assert_true(shards_seed_restored(&s, 1, 7));
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_JUDGE);
	assert_true(shards_in_scope(&s, a));
	assert_false(shards_in_scope(&s, b));
	assert_true(shards_holds(&s, a));
	assert_false(shards_holds(&s, b));

	/* past the deadline: unsure while PostgreSQL answers */
	shards_set_now(&s, 5000);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_UNSURE);
	assert_false(shards_in_scope(&s, a));
	assert_true(shards_holds(&s, a)); /* not forgotten for that */
	v.db_ok = false;
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost + ch.nwanted, 0);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_JUDGE);
	/* ... PostgreSQL away: the records received are judged, and the timers
	 * act only while the shard's session is up (the broker closes it
	 * when another instance got the lease and resumed it) */
	assert_false(shards_in_scope(&s, a));
	s.session_up[1] = true;
	assert_true(shards_in_scope(&s, a));
	s.session_up[1] = false;
	shards_set_now(&s, 4000); /* before the deadline the session does not matter */
	assert_true(shards_in_scope(&s, a));
	shards_set_now(&s, 5000);
	/* RELEASING is still ours */
	v.db_ok = true;
	own(&v, 1, CLUSTER_RELEASING, 7, 9000);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost + ch.nwanted, 0);
	assert_int_equal(verdict_of(&s, a, &why), SHARDS_JUDGE);
}

/* Lost: forgotten; taken again under a new epoch between two views:
 * forgotten and asked for again; a seed that arrives after a loss is
 * stale. */
static void
changes(void **state)
{
	struct shards s;
	struct shards_change ch;
	struct cluster_view v = empty_view();
	char a[32];
	int shard;

	(void)state;
	site_of(3, a, sizeof(a));
	shards_init(&s, NSHARDS);
	shards_set_now(&s, 0);
	own(&v, 3, CLUSTER_OWNED, 2, 1000);
	shards_apply_view(&s, &v, &ch);
	assert_true(shards_seed_restored(&s, 3, 2));
	assert_int_equal(shards_epoch_of(&s, a, &shard), 2);
	assert_int_equal(shard, 3);
	/* the same view again: nothing */
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost + ch.nwanted, 0);

	/* lost and taken back under epoch 4 before we looked */
	own(&v, 3, CLUSTER_OWNED, 4, 2000);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost, 1);
	assert_int_equal(ch.lost[0], 3);
	assert_int_equal(ch.nwanted, 1);
	assert_false(shards_holds(&s, a));
	assert_false(shards_seed_wanted(&s, 3, 2));
	assert_true(shards_seed_wanted(&s, 3, 4));

	/* lost while its seed loads: the seed is stale, nothing to forget */
	own(&v, 3, CLUSTER_NOT_OWNED, 0, 0);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost, 0);
	assert_int_equal(ch.nwanted, 0);
	assert_false(shards_seed_restored(&s, 3, 4));
	assert_int_equal(shards_epoch_of(&s, a, &shard), 0);

	/* ready, then released: lost */
	own(&v, 3, CLUSTER_OWNED, 5, 3000);
	shards_apply_view(&s, &v, &ch);
	assert_true(shards_seed_restored(&s, 3, 5));
	own(&v, 3, CLUSTER_NOT_OWNED, 0, 0);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(ch.nlost, 1);
	assert_false(shards_holds(&s, a));
}

/* [cluster] discovery: a site's home is shard 0 until its hand-over is
 * recorded; a record is judged by the stream it came from (its source):
 * shard s's copy of a site still at home in shard 0 is judged under s
 * when shard 0 is judged here too, waited for when another instance has
 * shard 0, and a copy from shard 0 after the hand-over is stored only. */
static void
discovery(void **state)
{
	struct registry_snapshot *reg = registry_snapshot_empty("Asia/Shanghai");
	struct shards s;
	struct shards_change ch;
	struct cluster_view v = empty_view();
	char a[32], b[32], u[32];
	enum shards_why why;
	int shard;

	(void)state;
	site_of(1, a, sizeof(a)); /* registered, hand-over under way */
	site_of(2, b, sizeof(b)); /* registered, hand-over done */
	site_of(3, u, sizeof(u)); /* nobody registered it */
	assert_non_null(reg);
	assert_int_equal(registry_snapshot_add_site(reg, a, HANDOVER_SENT), 0);
	assert_int_equal(registry_snapshot_add_site(reg, b, HANDOVER_SENT | HANDOVER_DISCOVERY_CUT),
			 0);
	assert_int_equal(registry_snapshot_add_site(reg, b, 0), -EEXIST);
	shards_init(&s, NSHARDS);
	shards_set_discovery(&s, true);
	shards_set_register(&s, reg);
	shards_set_now(&s, 0);
	assert_int_equal(shards_home_of(&s, a), 0);
	assert_int_equal(shards_home_of(&s, b), 2);
	assert_int_equal(shards_home_of(&s, u), 0);

	/* shard 0 and shard 1 ours, both ready */
	own(&v, 0, CLUSTER_OWNED, 3, 10000);
	own(&v, 1, CLUSTER_OWNED, 3, 10000);
	shards_apply_view(&s, &v, &ch);
	assert_true(shards_seed_restored(&s, 0, 3));
	assert_true(shards_seed_restored(&s, 1, 3));
	assert_int_equal(shards_verdict(&s, u, 0, &shard, &why), SHARDS_JUDGE);
	assert_int_equal(shard, 0);
	assert_int_equal(shards_verdict(&s, a, 0, &shard, &why), SHARDS_JUDGE);
	assert_int_equal(shards_verdict(&s, a, 1, &shard, &why), SHARDS_JUDGE);
	assert_int_equal(shard, 1);
	assert_true(shards_in_scope(&s, a) && shards_in_scope(&s, u));
	assert_false(shards_in_scope(&s, b)); /* home 2: not ours */
	assert_int_equal(shards_epoch_of(&s, u, &shard), 3);
	assert_int_equal(shard, 0);
	/* shard 2's copy of b, done: not ours */
	assert_int_equal(shards_verdict(&s, b, 2, &shard, &why), SHARDS_STORE_ONLY);
	assert_int_equal(why, SHARDS_WHY_NOT_OWNED);
	/* a copy of b from shard 0's stream after its hand-over */
	assert_int_equal(shards_verdict(&s, b, 0, &shard, &why), SHARDS_STORE_ONLY);
	assert_int_equal(why, SHARDS_WHY_OTHER_STREAM);
	/* a site nobody registered from a shard's stream (it left the
	 * register): its home's stream has it */
	assert_int_equal(shards_verdict(&s, u, 3, &shard, &why), SHARDS_STORE_ONLY);
	assert_int_equal(why, SHARDS_WHY_OTHER_STREAM);
	/* no source said (an old record): by its home */
	assert_int_equal(shards_verdict(&s, a, -1, &shard, &why), SHARDS_JUDGE);
	assert_int_equal(shard, 0);

	/* shard 0 another instance's: shard 1's copy of a waits for the
	 * hand-over to be recorded */
	own(&v, 0, CLUSTER_NOT_OWNED, 0, 0);
	shards_apply_view(&s, &v, &ch);
	assert_int_equal(shards_verdict(&s, a, 1, &shard, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_HANDOVER);
	assert_int_equal(shard, 1);
	assert_int_equal(shards_verdict(&s, a, 0, &shard, &why), SHARDS_STORE_ONLY);
	assert_false(shards_in_scope(&s, a));
	/* recorded: a's home is 1; the shard's state is loaded again */
	assert_false(shards_reseed(&s, 0)); /* not ours */
	assert_true(shards_reseed(&s, 1));
	assert_int_equal(s.asked[1], 3);
	assert_false(shards_holds(&s, u)); /* home 0: not ready here */
	registry_snapshot_free(reg);
	reg = registry_snapshot_empty("Asia/Shanghai");
	assert_int_equal(registry_snapshot_add_site(reg, a, HANDOVER_SENT | HANDOVER_DISCOVERY_CUT),
			 0);
	shards_set_register(&s, reg);
	assert_int_equal(shards_verdict(&s, a, 1, &shard, &why), SHARDS_WAIT);
	assert_int_equal(why, SHARDS_WHY_LOADING);
	assert_true(shards_seed_wanted(&s, 1, 3));
	assert_true(shards_seed_restored(&s, 1, 3));
	assert_int_equal(shards_verdict(&s, a, 1, &shard, &why), SHARDS_JUDGE);
	assert_true(shards_in_scope(&s, a));
	assert_true(shards_holds(&s, a));
	/* discovery off: by cluster_shard_of() whatever the register says */
	shards_set_discovery(&s, false);
	assert_int_equal(shards_home_of(&s, u), 3);
	registry_snapshot_free(reg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(not_clustered),
		cmocka_unit_test(verdicts),
		cmocka_unit_test(changes),
		cmocka_unit_test(discovery),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
