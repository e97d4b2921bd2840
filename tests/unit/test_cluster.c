/* test_cluster.c - the pure part of cluster.h (cluster_view.c): the shard
 * of a site (pinned values: they must never change, or sites would move
 * between shards on an upgrade), the session ids, cluster_may_act(), and
 * cluster_plan() alone and as several instances converging on one table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"

/* ---------------------------------------------------------------- shards */

static void
test_shard_of_pinned(void **state)
{
	/* Computed once (XXH3-64 of the bytes, modulo n) and pinned. */
	static const struct {
		const char *site;
		int of16, of256, of7;
	} cases[] = {
		{ "S1", 12, 108, 6 },	 { "sunny", 12, 76, 3 },       { "site-0001", 9, 57, 0 },
		{ "G03", 6, 38, 5 },	 { "compound_42", 7, 151, 3 }, { "A", 5, 133, 1 },
		{ "Z9-z_x", 5, 181, 2 }, { "hualin-7", 13, 93, 3 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(cluster_shard_of(cases[i].site, 16), cases[i].of16);
		assert_int_equal(cluster_shard_of(cases[i].site, 256), cases[i].of256);
		assert_int_equal(cluster_shard_of(cases[i].site, 7), cases[i].of7);
	}
	/* One shard, or none asked: everything is shard 0. */
	assert_int_equal(cluster_shard_of("S1", 1), 0);
	assert_int_equal(cluster_shard_of("S1", 0), 0);
}

static void
test_shard_of_spread(void **state)
{
	int count[16] = { 0 };
	char site[32];

	(void)state;
	for (int i = 0; i < 10000; i++) {
		int s;

		snprintf(site, sizeof(site), "site-%05d", i);
		s = cluster_shard_of(site, 16);
		assert_in_range(s, 0, 15);
		count[s]++;
	}
	/* 625 each on average; 575 to 653 here. Within 15 %. */
	for (int s = 0; s < 16; s++)
		assert_in_range(count[s], 531, 719);
}

static void
test_session_id(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(cluster_session_id("cordon-shard-", 7, buf, sizeof(buf)), 16);
	assert_string_equal(buf, "cordon-shard-007");
	cluster_session_id("cordon-shard-", 255, buf, sizeof(buf));
	assert_string_equal(buf, "cordon-shard-255");
	cluster_session_id("x", 0, buf, sizeof(buf));
	assert_string_equal(buf, "x000");
	/* Too small: snprintf's count, the buffer cut and terminated. */
	assert_int_equal(cluster_session_id("cordon-shard-", 7, buf, 8), 16);
	assert_string_equal(buf, "cordon-");
}

/* ---------------------------------------------------------------- may act */

static void
test_may_act(void **state)
{
	static struct cluster_view v;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.nshards = 4;
	v.db_ok = true;
	v.shard[0] = (struct cluster_shard){ CLUSTER_OWNED, 3, 1000, "a" };
	v.shard[1] = (struct cluster_shard){ CLUSTER_RELEASING, 4, 1000, "a" };
	v.shard[2] = (struct cluster_shard){ CLUSTER_NOT_OWNED, 0, 0, "b" };
	v.shard[3] = (struct cluster_shard){ CLUSTER_NOT_OWNED, 0, 5000, "" };

	/* Before the deadline: owned and releasing shards. */
	assert_true(cluster_may_act(&v, 0, 999));
	assert_true(cluster_may_act(&v, 1, 999));
	assert_false(cluster_may_act(&v, 2, 999));
	assert_false(cluster_may_act(&v, 3, 999)); /* a deadline of no use */
	/* From the deadline on, not while PostgreSQL answers. */
	assert_false(cluster_may_act(&v, 0, 1000));
	assert_false(cluster_may_act(&v, 1, 5000));
	/* PostgreSQL away: past the deadline still ours (nobody can take it);
	 * never a shard that is not ours. */
	v.db_ok = false;
	assert_true(cluster_may_act(&v, 0, 100000));
	assert_true(cluster_may_act(&v, 1, 100000));
	assert_false(cluster_may_act(&v, 2, 100000));
	assert_false(cluster_may_act(&v, 3, 0));
	/* Out of range. */
	assert_false(cluster_may_act(&v, -1, 0));
	assert_false(cluster_may_act(&v, 4, 0));
	assert_false(cluster_may_act(&v, CLUSTER_MAX_SHARDS, 0));
}

/* ---------------------------------------------------------------- plan */

struct fixture {
	struct cluster_row rows[CLUSTER_MAX_SHARDS];
	int others[64];
	struct cluster_plan_input in;
	struct cluster_plan plan;
};

/* n shards, all FREE; take on, take_expired on, seed 0, offer_max 4. */
static void
setup_plan(struct fixture *f, int n)
{
	memset(f, 0, sizeof(*f));
	f->in = (struct cluster_plan_input){
		.nshards = n,
		.rows = f->rows,
		.others = f->others,
		.take = true,
		.take_expired = true,
		.offer_max = 4,
	};
}

static void
set_rows(struct fixture *f, int from, int to, enum cluster_row_kind kind, bool expired)
{
	for (int s = from; s <= to; s++)
		f->rows[s] = (struct cluster_row){ kind, expired };
}

static void
assert_list(const int *got, int n, const int *want, int nwant)
{
	assert_int_equal(n, nwant);
	for (int i = 0; i < n; i++)
		assert_int_equal(got[i], want[i]);
}

static void
test_plan_alone_takes_all(void **state)
{
	struct fixture f;

	(void)state;
	setup_plan(&f, 16);
	f.in.seed = 5;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 16);
	assert_int_equal(f.plan.ntake, 16);
	assert_int_equal(f.plan.noffer, 0);
	/* From the seed on, round the table. */
	assert_int_equal(f.plan.take[0], 5);
	assert_int_equal(f.plan.take[10], 15);
	assert_int_equal(f.plan.take[11], 0);
	/* Not yet allowed to take (join delay): nothing. */
	f.in.take = false;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 16);
	assert_int_equal(f.plan.ntake, 0);
}

static void
test_plan_fair_share(void **state)
{
	struct fixture f;

	(void)state;
	/* Three alive on a fresh table: the others hold none, below the
	 * floor of 16 / 3 = 5, so 5 at first, leaving them theirs. */
	setup_plan(&f, 16);
	f.in.nothers = 2;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 5);
	assert_int_equal(f.plan.ntake, 5);
	/* They have their 5: ceil(16 / 3) = 6 at most, the one left over. */
	f.others[0] = f.others[1] = 5;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 6);
	assert_int_equal(f.plan.ntake, 6);
	/* 6/5/5 is where it stays: nobody below the floor of 5. */
	set_rows(&f, 0, 4, CLUSTER_ROW_MINE, false);
	set_rows(&f, 5, 15, CLUSTER_ROW_OTHER, false);
	f.others[0] = 6;
	f.others[1] = 5;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 6);
	assert_int_equal(f.plan.ntake + f.plan.noffer, 0);
	/* Free shards beyond the fair share are left. */
	set_rows(&f, 0, 5, CLUSTER_ROW_MINE, false);
	set_rows(&f, 6, 9, CLUSTER_ROW_FREE, false);
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.ntake + f.plan.noffer, 0);
}

static void
test_plan_offers_to_a_newcomer(void **state)
{
	struct fixture f;
	static const int highest2[] = { 5, 4 };

	(void)state;
	/* Four alive: one has none, so everyone above the floor of 4 offers
	 * down to it, the highest shards first. */
	setup_plan(&f, 16);
	set_rows(&f, 0, 5, CLUSTER_ROW_MINE, false);
	set_rows(&f, 6, 15, CLUSTER_ROW_OTHER, false);
	f.in.nothers = 3;
	f.others[0] = 5;
	f.others[1] = 5;
	f.others[2] = 0;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 4);
	assert_int_equal(f.plan.ntake, 0);
	assert_list(f.plan.offer, f.plan.noffer, highest2, 2);
	/* Once offered, not offered again while they are being released. */
	set_rows(&f, 4, 5, CLUSTER_ROW_RELEASING, false);
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.ntake + f.plan.noffer, 0);
	/* The newcomer's view: nobody starving, it takes up to ceil = 4. */
	setup_plan(&f, 16);
	set_rows(&f, 0, 11, CLUSTER_ROW_OTHER, false);
	f.in.nothers = 3;
	f.others[0] = f.others[1] = f.others[2] = 4;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 4);
	assert_int_equal(f.plan.ntake, 4);
}

static void
test_plan_offer_max(void **state)
{
	struct fixture f;
	static const int four[] = { 15, 14, 13, 12 };
	static const int two[] = { 13, 12 };

	(void)state;
	setup_plan(&f, 16);
	set_rows(&f, 0, 15, CLUSTER_ROW_MINE, false);
	f.in.nothers = 1;
	f.others[0] = 0;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 8);
	assert_list(f.plan.offer, f.plan.noffer, four, 4);
	/* Two of them RELEASING: two more, never more than four at once. */
	set_rows(&f, 14, 15, CLUSTER_ROW_RELEASING, false);
	cluster_plan(&f.in, &f.plan);
	assert_list(f.plan.offer, f.plan.noffer, two, 2);
	/* Four RELEASING: none more. */
	set_rows(&f, 12, 13, CLUSTER_ROW_RELEASING, false);
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.noffer, 0);
}

static void
test_plan_leaves_free_shards_to_the_starving(void **state)
{
	struct fixture f;

	(void)state;
	/* Me 5 (the floor), others 6 and 3, two free: the one with 3 gets
	 * them; taking them would leave it below its floor. */
	setup_plan(&f, 16);
	set_rows(&f, 0, 4, CLUSTER_ROW_MINE, false);
	set_rows(&f, 5, 13, CLUSTER_ROW_OTHER, false);
	f.in.nothers = 2;
	f.others[0] = 6;
	f.others[1] = 3;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 5);
	assert_int_equal(f.plan.ntake + f.plan.noffer, 0);
}

static void
test_plan_expired_and_reclaim(void **state)
{
	struct fixture f;
	static const int expired_only[] = { 3, 7 };
	static const int self_first[] = { 9, 10, 3 };
	static const int self_last[] = { 3, 7, 10 };

	(void)state;
	setup_plan(&f, 12);
	set_rows(&f, 0, 11, CLUSTER_ROW_OTHER, false);
	f.rows[3].expired = true;
	f.rows[7].expired = true;
	/* Alone now (the owners are gone): the expired ones. */
	cluster_plan(&f.in, &f.plan);
	assert_list(f.plan.take, f.plan.ntake, expired_only, 2);
	/* Not settled yet: none of them. */
	f.in.take_expired = false;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.ntake, 0);
	/* A previous process of our name: its leases first when reclaiming,
	 * expired or not, before the others' expired ones. */
	f.in.take_expired = true;
	f.rows[9] = (struct cluster_row){ CLUSTER_ROW_SELF, false };
	f.rows[10] = (struct cluster_row){ CLUSTER_ROW_SELF, true };
	f.in.reclaim = true;
	f.in.nothers = 3; /* target ceil(12 / 4) = 3 */
	f.others[0] = f.others[1] = f.others[2] = 3;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 3);
	assert_list(f.plan.take, f.plan.ntake, self_first, 3);
	/* Without reclaim a SELF lease is anyone's: taken only expired, last. */
	f.in.reclaim = false;
	cluster_plan(&f.in, &f.plan);
	assert_list(f.plan.take, f.plan.ntake, self_last, 3);
}

static void
test_plan_stopping(void **state)
{
	struct fixture f;
	static const int mine[] = { 1, 2 };

	(void)state;
	setup_plan(&f, 8);
	set_rows(&f, 0, 0, CLUSTER_ROW_RELEASING, false);
	set_rows(&f, 1, 2, CLUSTER_ROW_MINE, false);
	f.in.stopping = true;
	cluster_plan(&f.in, &f.plan);
	assert_int_equal(f.plan.target, 0);
	assert_int_equal(f.plan.ntake, 0);
	assert_list(f.plan.offer, f.plan.noffer, mine, 2);
}

/* Several instances planning in turns over one table, as the thread
 * does: takes succeed only on what is still free, offers are released
 * at the instance's next turn; instances join and leave. Every state
 * must converge to everyone within [floor, ceil], all shards owned. */
struct sim {
	int n, ninst;
	int owner[CLUSTER_MAX_SHARDS]; /* -1 free */
	bool releasing[CLUSTER_MAX_SHARDS];
	bool alive[16];
};

static int
sim_count(const struct sim *m, int who)
{
	int k = 0;

	for (int s = 0; s < m->n; s++)
		k += m->owner[s] == who;
	return k;
}

static void
sim_turn(struct sim *m, int who)
{
	static struct fixture f;

	setup_plan(&f, m->n);
	f.in.seed = (unsigned)who * 7919u;
	for (int s = 0; s < m->n; s++) {
		if (m->owner[s] == who && m->releasing[s]) {
			m->owner[s] = -1; /* the main loop released it */
			m->releasing[s] = false;
		}
		if (m->owner[s] < 0)
			f.rows[s].kind = CLUSTER_ROW_FREE;
		else if (m->owner[s] == who)
			f.rows[s].kind = CLUSTER_ROW_MINE;
		else
			f.rows[s].kind = CLUSTER_ROW_OTHER;
	}
	for (int i = 0; i < m->ninst; i++)
		if (i != who && m->alive[i])
			f.others[f.in.nothers++] = sim_count(m, i);
	cluster_plan(&f.in, &f.plan);
	assert_false(f.plan.ntake && f.plan.noffer);
	for (int i = 0; i < f.plan.ntake; i++) {
		assert_int_equal(m->owner[f.plan.take[i]], -1);
		m->owner[f.plan.take[i]] = who;
	}
	for (int i = 0; i < f.plan.noffer; i++) {
		assert_int_equal(m->owner[f.plan.offer[i]], who);
		m->releasing[f.plan.offer[i]] = true;
	}
}

static bool
sim_balanced(const struct sim *m)
{
	int alive = 0, lo, hi;

	for (int i = 0; i < m->ninst; i++)
		alive += m->alive[i];
	if (alive == 0)
		return true;
	lo = m->n / alive;
	hi = (m->n + alive - 1) / alive;
	for (int s = 0; s < m->n; s++)
		if (m->owner[s] < 0 || !m->alive[m->owner[s]] || m->releasing[s])
			return false;
	for (int i = 0; i < m->ninst; i++) {
		int k = sim_count(m, i);

		if (m->alive[i] && (k < lo || k > hi))
			return false;
	}
	return true;
}

/* Runs rounds (every alive instance one turn, in a rotating order) until
 * balanced; fails after 200. */
static void
sim_converge(struct sim *m)
{
	for (int round = 0; round < 200; round++) {
		for (int k = 0; k < m->ninst; k++) {
			int who = (k + round) % m->ninst;

			if (m->alive[who])
				sim_turn(m, who);
		}
		if (sim_balanced(m))
			return;
	}
	fail_msg("no balance after 200 rounds: %d shards, %d instances", m->n, m->ninst);
}

static void
test_plan_converges(void **state)
{
	static const int sizes[] = { 1, 2, 7, 16, 100, 256 };
	static struct sim m;

	(void)state;
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		for (int k = 1; k <= 12; k++) {
			memset(&m, 0, sizeof(m));
			m.n = sizes[z];
			for (int s = 0; s < m.n; s++)
				m.owner[s] = -1;
			/* One starts alone and takes everything; the others join
			 * one by one, each time converging. */
			m.ninst = k;
			for (int i = 0; i < k; i++) {
				m.alive[i] = true;
				sim_converge(&m);
			}
			/* The first one dies: its shards become free (expired). */
			if (k > 1) {
				m.alive[0] = false;
				for (int s = 0; s < m.n; s++)
					if (m.owner[s] == 0) {
						m.owner[s] = -1;
						m.releasing[s] = false;
					}
				sim_converge(&m);
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shard_of_pinned),
		cmocka_unit_test(test_shard_of_spread),
		cmocka_unit_test(test_session_id),
		cmocka_unit_test(test_may_act),
		cmocka_unit_test(test_plan_alone_takes_all),
		cmocka_unit_test(test_plan_fair_share),
		cmocka_unit_test(test_plan_offers_to_a_newcomer),
		cmocka_unit_test(test_plan_offer_max),
		cmocka_unit_test(test_plan_leaves_free_shards_to_the_starving),
		cmocka_unit_test(test_plan_expired_and_reclaim),
		cmocka_unit_test(test_plan_stopping),
		cmocka_unit_test(test_plan_converges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
