/* Unit tests of handover.c: the DISCOVERY and SHARD gates at a site's
 * hand-over, the sites' changes, the topics a gate judges, the cut queue,
 * and the gate on one thread while the sites change on another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"

#define PASS HANDOVER_PASS
#define DROP HANDOVER_DROP

/* The fake spool: its end is what the test says; counts the calls. */
struct fake_spool {
	uint64_t end;
	int calls;
};

static uint64_t
fake_end(void *ctx)
{
	struct fake_spool *s = ctx;

	s->calls++;
	return s->end;
}

/* The fake spool's end from now on (read on the gate's calls). */
static void
spool_at(struct fake_spool *s, uint64_t end)
{
	s->end = end;
}

static enum handover_verdict
gate(struct handover *h, const char *topic)
{
	return handover_gate(h, topic, strlen(topic));
}

static void
assert_list(const struct mqtt_subs_list *l, const char *const *want, size_t n)
{
	assert_int_equal(l->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->names[i], want[i]);
}

static struct handover_stats
stats_of(struct handover *h)
{
	struct handover_stats st;

	handover_get_stats(h, &st);
	return st;
}

static void
discovery_flow(void **state)
{
	struct fake_spool sp = { .end = 42 };
	struct handover *h;
	struct mqtt_subs_list send;
	struct handover_cut cut;
	struct handover_stats st;
	const struct handover_site first[] = {
		{ "S1", 0 },
		{ "S2", HANDOVER_DISCOVERY_CUT },
		{ "S1", HANDOVER_DISCOVERY_CUT }, /* a duplicate: the first counts */
	};

	(void)state;
	assert_int_equal(handover_create("cordon", HANDOVER_DISCOVERY, fake_end, &sp, &h), 0);
	/* Before any site: everything passes. */
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(handover_set_sites(h, first, 3, &send), 0);
	assert_int_equal(send.n, 0); /* DISCOVERY sends no marker */
	free(send.names);

	/* Before S1's marker S1 passes; S2 was cut by another owner; S9 is
	 * nobody's (or shard 0's). */
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S1/hotline"), PASS);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S9/gate/g1/event"), PASS);
	/* The marker: dropped, S1 cut at the spool's end. */
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	assert_int_equal(sp.calls, 1);
	spool_at(&sp, 99);
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S1/hotline"), DROP);
	/* Again, and markers of sites not in PASS or not in the gate: dropped,
	 * nothing moves. */
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S2/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S9/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S9/gate/g1/event"), PASS);
	assert_int_equal(sp.calls, 1);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S1");
	assert_int_equal(cut.end, 42);
	assert_false(handover_next_cut(h, &cut));
	assert_false(handover_is_holding(h, "S1")); /* no HOLD in DISCOVERY */

	st = stats_of(h);
	assert_int_equal(st.passed, 5);
	assert_int_equal(st.dropped, 3);
	assert_int_equal(st.markers, 4);
	assert_int_equal(st.cuts, 1);
	assert_int_equal(st.sites, 2);
	assert_int_equal(st.dropping, 2);
	assert_int_equal(st.holding, 0);

	/* S1 kept: still DROP whatever its flags (the snapshot is older than
	 * the cut); S2 left out: passed; S3 new, not cut: PASS. */
	assert_int_equal(
		handover_set_sites(h, (const struct handover_site[]){ { "S3", 0 }, { "S1", 0 } }, 2,
				   NULL),
		0);
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S3/gate/g1/event"), PASS);
	st = stats_of(h);
	assert_int_equal(st.sites, 2);
	assert_int_equal(st.dropping, 1);

	/* S3 kept in PASS, its flags now cut (another owner of shard 0 cut
	 * it): DROP, and no cut queued (PostgreSQL knows). */
	assert_int_equal(handover_set_sites(h,
					    (const struct handover_site[]){
						    { "S1", 0 }, { "S3", HANDOVER_DISCOVERY_CUT } },
					    2, NULL),
			 0);
	assert_int_equal(gate(h, "cordon/S3/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S3/_handover"), DROP);
	assert_false(handover_next_cut(h, &cut));
	st = stats_of(h);
	assert_int_equal(st.cuts, 1);
	assert_int_equal(st.dropping, 2);

	/* Every site left out: all pass. */
	assert_int_equal(handover_set_sites(h, NULL, 0, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S3/gate/g1/event"), PASS);
	st = stats_of(h);
	assert_int_equal(st.sites, 0);
	assert_int_equal(st.dropping, 0);
	handover_destroy(h);
}

static void
shard_flow(void **state)
{
	struct handover *h;
	struct mqtt_subs_list send;
	struct handover_cut cut;
	struct handover_stats st;
	const struct handover_site first[] = {
		{ "S2", 0 },
		{ "S1", 0 },
		{ "S3", HANDOVER_SENT },
		{ "S1", HANDOVER_SENT }, /* a duplicate: the first counts */
		{ "S0", HANDOVER_DISCOVERY_CUT },
	};

	(void)state;
	assert_int_equal(handover_create("cordon", HANDOVER_SHARD, NULL, NULL, &h), 0);
	assert_int_equal(handover_set_sites(h, first, 5, &send), 0);
	/* New and not sent: HOLD, to send in strcmp order. */
	assert_list(&send, (const char *[]){ "S0", "S1", "S2" }, 3);
	free(send.names);
	assert_true(handover_is_holding(h, "S1"));
	assert_false(handover_is_holding(h, "S3"));
	assert_false(handover_is_holding(h, "S9"));

	/* Before S1's marker: the DISCOVERY stream has S1's messages. */
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S3/gate/g1/event"), PASS); /* sent: done or not known */
	assert_int_equal(gate(h, "cordon/S9/gate/g1/event"), PASS); /* leaving: not dropped */
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	assert_false(handover_is_holding(h, "S1"));
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	/* Again: nothing moves; a SHARD cut is not queued. */
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S3/_handover"), DROP);
	assert_false(handover_next_cut(h, &cut));
	st = stats_of(h);
	assert_int_equal(st.passed, 4);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.markers, 3);
	assert_int_equal(st.cuts, 1);
	assert_int_equal(st.sites, 4);
	assert_int_equal(st.holding, 2);
	assert_int_equal(st.dropping, 0);

	/* S1 kept in PASS though its flags say not sent; S2 kept in HOLD
	 * though they say sent; S0 and S3 left out (passed); S4 new, not
	 * sent: the only one to send; S5 new, sent: PASS. */
	assert_int_equal(handover_set_sites(h,
					    (const struct handover_site[]){ { "S5", HANDOVER_SENT },
									    { "S2", HANDOVER_SENT },
									    { "S1", 0 },
									    { "S4", 0 } },
					    4, &send),
			 0);
	assert_list(&send, (const char *[]){ "S4" }, 1);
	free(send.names);
	assert_int_equal(gate(h, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S0/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S4/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "cordon/S5/gate/g1/event"), PASS);
	assert_true(handover_is_holding(h, "S2"));
	assert_false(handover_is_holding(h, "S0"));
	st = stats_of(h);
	assert_int_equal(st.sites, 4);
	assert_int_equal(st.holding, 2);

	/* S2 left out and added again: new, so HOLD and to send again. */
	assert_int_equal(
		handover_set_sites(h, (const struct handover_site[]){ { "S1", 0 } }, 1, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), PASS);
	assert_int_equal(
		handover_set_sites(h, (const struct handover_site[]){ { "S2", 0 } }, 1, &send), 0);
	assert_list(&send, (const char *[]){ "S2" }, 1);
	free(send.names);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), DROP);
	handover_destroy(h);
}

static void
topic_edges(void **state)
{
	struct fake_spool sp = { .end = 7 };
	struct handover *h;
	struct handover_cut cut;
	struct handover_stats st;
	char buf[128];
	char long_site[80];
	const struct handover_site sites[] = {
		{ "S1", HANDOVER_DISCOVERY_CUT },
		{ "", 0 },
		{ "x/y", 0 },
		{ "+", 0 },
		{ "#", 0 },
		{ "S2", 0 },
	};

	(void)state;
	/* A root of two levels. */
	assert_int_equal(handover_create("a/b", HANDOVER_DISCOVERY, fake_end, &sp, &h), 0);
	assert_int_equal(handover_set_sites(h, sites, 6, NULL), 0);
	assert_int_equal(stats_of(h).sites, 2); /* names no topic level matches: left out */

	assert_int_equal(gate(h, "a/b/S1/gate/g1/event"), DROP);
	assert_int_equal(gate(h, "a/b/S1/_handover/x"), DROP);	  /* not a marker: S1's state */
	assert_int_equal(gate(h, "a/b/S1/gate/_handover"), DROP); /* not a marker either */
	assert_int_equal(gate(h, "a/S1/gate/g1/event"), PASS);	  /* another root */
	assert_int_equal(gate(h, "a/bS1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "b/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "a/b"), PASS); /* the root itself */
	assert_int_equal(gate(h, "a/b/"), PASS);
	assert_int_equal(gate(h, "a/b/S1"), PASS);	       /* too few levels: no site */
	assert_int_equal(gate(h, "a/b//gate/g1/event"), PASS); /* an empty site */
	assert_int_equal(gate(h, ""), PASS);
	/* topic_len counts, not the NUL: 6 bytes are "a/b/S1". */
	snprintf(buf, sizeof(buf), "a/b/S1/gate/g1/event");
	assert_int_equal(handover_gate(h, buf, 6), PASS);
	/* "a/b/S1/": S1's, with an empty level after it. */
	assert_int_equal(handover_gate(h, buf, 7), DROP);
	assert_int_equal(handover_gate(h, buf, 8), DROP);
	/* A NUL inside a topic's site level is not the site before it. */
	assert_int_equal(handover_gate(h, "a/b/S1\0x/gate", 13), PASS);
	/* A site longer than any the gate can hold. */
	memset(long_site, 'S', 70);
	long_site[70] = '\0';
	snprintf(buf, sizeof(buf), "a/b/%s/hotline", long_site);
	assert_int_equal(gate(h, buf), PASS);
	st = stats_of(h);
	assert_int_equal(st.passed, 11);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(st.markers, 0);

	/* Markers: <root>/<site>/_handover exactly, whatever the root's levels. A marker
	 * with an empty or long site is still dropped, moving nothing. */
	assert_int_equal(gate(h, "a/b//_handover"), DROP);
	snprintf(buf, sizeof(buf), "a/b/%s/_handover", long_site);
	assert_int_equal(gate(h, buf), DROP);
	assert_int_equal(gate(h, "a/S2/_handover"), PASS); /* another root: not a marker */
	assert_int_equal(gate(h, "a/b/S2/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "a/b/S2/_handover"), DROP);
	assert_int_equal(gate(h, "a/b/S2/gate/g1/event"), DROP);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S2");
	assert_int_equal(cut.end, 7);
	assert_false(handover_next_cut(h, &cut));
	st = stats_of(h);
	assert_int_equal(st.markers, 3);
	assert_int_equal(st.cuts, 1);
	handover_destroy(h);

	/* A root of one level is not the prefix of a longer one. */
	assert_int_equal(handover_create("cordon", HANDOVER_SHARD, NULL, NULL, &h), 0);
	assert_int_equal(
		handover_set_sites(h, (const struct handover_site[]){ { "S1", 0 } }, 1, NULL), 0);
	assert_int_equal(gate(h, "cordon/S1/hotline"), DROP);
	assert_int_equal(gate(h, "cordonX/S1/hotline"), PASS);
	assert_int_equal(gate(h, "cordonX/S1/_handover"), PASS);
	assert_int_equal(gate(h, "Cordon/S1/hotline"), PASS);
	assert_int_equal(gate(h, "cordon"), PASS);
	assert_true(handover_is_holding(h, "S1"));
	handover_destroy(h);
}

static void
cut_queue(void **state)
{
	struct fake_spool sp = { 0 };
	struct handover *h;
	struct handover_cut cut;
	const struct handover_site sites[] = { { "S1", 0 }, { "S2", 0 }, { "S3", 0 }, { "S4", 0 } };

	(void)state;
	assert_int_equal(handover_create("cordon", HANDOVER_DISCOVERY, fake_end, &sp, &h), 0);
	assert_int_equal(handover_set_sites(h, sites, 4, NULL), 0);
	assert_false(handover_next_cut(h, &cut));
	spool_at(&sp, 100);
	assert_int_equal(gate(h, "cordon/S2/_handover"), DROP);
	spool_at(&sp, 250);
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S2/_handover"), DROP); /* cut once */
	spool_at(&sp, 300);
	assert_int_equal(gate(h, "cordon/S3/_handover"), DROP);
	assert_int_equal(sp.calls, 3);
	/* Oldest first. */
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S2");
	assert_int_equal(cut.end, 100);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S1");
	assert_int_equal(cut.end, 250);
	/* A cut after a take goes behind what is left. */
	spool_at(&sp, 400);
	assert_int_equal(gate(h, "cordon/S4/_handover"), DROP);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S3");
	assert_int_equal(cut.end, 300);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S4");
	assert_int_equal(cut.end, 400);
	assert_false(handover_next_cut(h, &cut));

	/* A cut not taken outlives its site's leaving (it was made); the site
	 * added again, new and not cut in its flags, is cut again at its next
	 * marker. */
	spool_at(&sp, 500);
	assert_int_equal(handover_set_sites(h, sites, 1, NULL), 0); /* S1 only */
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), PASS);
	assert_int_equal(handover_set_sites(h, sites, 2, NULL), 0); /* S2 back */
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), PASS);
	assert_int_equal(gate(h, "cordon/S2/_handover"), DROP);
	assert_int_equal(handover_set_sites(h, sites, 1, NULL), 0);
	spool_at(&sp, 600);
	assert_int_equal(handover_set_sites(h, sites, 2, NULL), 0);
	assert_int_equal(gate(h, "cordon/S2/_handover"), DROP);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S2");
	assert_int_equal(cut.end, 500);
	assert_true(handover_next_cut(h, &cut));
	assert_string_equal(cut.site, "S2");
	assert_int_equal(cut.end, 600);
	assert_false(handover_next_cut(h, &cut));
	assert_int_equal(stats_of(h).cuts, 6);

	/* Cuts left in the queue are freed with the gate (ASan's to see). */
	assert_int_equal(handover_set_sites(h, sites, 4, NULL), 0);
	assert_int_equal(gate(h, "cordon/S2/gate/g1/event"), DROP); /* kept */
	assert_int_equal(handover_set_sites(h, sites + 3, 1, NULL), 0);
	assert_int_equal(handover_set_sites(h, sites, 4, NULL), 0);
	assert_int_equal(gate(h, "cordon/S3/_handover"), DROP);
	assert_int_equal(gate(h, "cordon/S1/_handover"), DROP);
	handover_destroy(h);
}

/* A site removed from the register takes its row with it; registered
 * again, in one snapshot with its removal (or one this instance missed),
 * it comes back with its row gone or new. A gate that saw the row
 * settled (DISCOVERY: cut; SHARD: sent) hands it over again: DISCOVERY
 * back to PASS until a new marker (else shard 0's gate drops it for
 * ever, no cut is recorded and another instance's rules wait for one),
 * SHARD records HANDOVER_SENT again (its markers go out), still passing
 * it. A row not seen settled yet is a snapshot older than the gate: the
 * state is kept, as before. */
static void
registered_again(void **state)
{
	struct fake_spool sp = { .end = 5 };
	struct handover *d, *s;
	struct mqtt_subs_list send;
	struct handover_cut cut;
	const struct handover_site cut1[] = { { "S1", HANDOVER_SENT | HANDOVER_DISCOVERY_CUT } };
	const struct handover_site none1[] = { { "S1", 0 } };
	const struct handover_site sent1[] = { { "S1", HANDOVER_SENT } };

	(void)state;
	/* DISCOVERY: S1 handed over long ago (DROP); its row gone: PASS, and
	 * the next marker cuts it again. */
	assert_int_equal(handover_create("cordon", HANDOVER_DISCOVERY, fake_end, &sp, &d), 0);
	assert_int_equal(handover_set_sites(d, cut1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), DROP);
	assert_int_equal(handover_set_sites(d, none1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), PASS);
	/* Its new row has HANDOVER_SENT only: still PASS (not seen settled). */
	assert_int_equal(handover_set_sites(d, sent1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(gate(d, "cordon/S1/_handover"), DROP);
	assert_true(handover_next_cut(d, &cut));
	assert_string_equal(cut.site, "S1");
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), DROP);
	/* A snapshot older than this cut: kept (DROP). */
	assert_int_equal(handover_set_sites(d, sent1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), DROP);
	/* Recorded, then gone again with a new row that has HANDOVER_SENT
	 * already (removed, registered again, sent, all in one snapshot). */
	assert_int_equal(handover_set_sites(d, cut1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), DROP);
	assert_int_equal(handover_set_sites(d, sent1, 1, NULL), 0);
	assert_int_equal(gate(d, "cordon/S1/gate/g1/event"), PASS);
	assert_int_equal(stats_of(d).dropping, 0);
	handover_destroy(d);

	/* SHARD: S1 done (PASS, seen sent); its row gone: still PASS, and
	 * to send again, once. */
	assert_int_equal(handover_create("cordon", HANDOVER_SHARD, NULL, NULL, &s), 0);
	assert_int_equal(handover_set_sites(s, cut1, 1, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	assert_int_equal(handover_set_sites(s, none1, 1, &send), 0);
	assert_list(&send, (const char *[]){ "S1" }, 1);
	free(send.names);
	assert_int_equal(gate(s, "cordon/S1/gate/g1/event"), PASS);
	assert_false(handover_is_holding(s, "S1"));
	assert_int_equal(handover_set_sites(s, none1, 1, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	assert_int_equal(handover_set_sites(s, sent1, 1, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	/* S2 held until its marker, never seen sent: a snapshot without the
	 * step keeps it, sends nothing again. */
	assert_int_equal(
		handover_set_sites(s, (const struct handover_site[]){ { "S2", 0 } }, 1, &send), 0);
	assert_list(&send, (const char *[]){ "S2" }, 1);
	free(send.names);
	assert_int_equal(gate(s, "cordon/S2/_handover"), DROP);
	assert_int_equal(
		handover_set_sites(s, (const struct handover_site[]){ { "S2", 0 } }, 1, &send), 0);
	assert_int_equal(send.n, 0);
	free(send.names);
	assert_int_equal(gate(s, "cordon/S2/gate/g1/event"), PASS);
	handover_destroy(s);
}

static void
bad_root(void **state)
{
	struct handover *h = NULL;
	char root[202];

	(void)state;
	assert_int_equal(handover_create("", HANDOVER_SHARD, NULL, NULL, &h), -EINVAL);
	memset(root, 'r', 201);
	root[201] = '\0';
	assert_int_equal(handover_create(root, HANDOVER_SHARD, NULL, NULL, &h), -EINVAL);
	assert_null(h);
	root[200] = '\0';
	assert_int_equal(handover_create(root, HANDOVER_SHARD, NULL, NULL, &h), 0);
	assert_non_null(h);
	handover_destroy(h);
	handover_destroy(NULL);
}

/* Two threads: the gate on a scripted stream, the sites changing under
 * it. Site K is in every set with flags 0, so it keeps its state across
 * the swaps: the stream's first pass has K's message, marker, message,
 * and K's verdicts must follow the marker. Sites A0..A15 come and go
 * (the even ones in one set, the odd ones in the other), each with a
 * marker every pass. The main loop takes the cuts as it goes. */
#define NA 16

struct race {
	struct handover *h;
	enum handover_role role;
	atomic_size_t rounds; /* handover_set_sites() calls the main thread made */
	atomic_bool done;
	size_t passes, calls, passed, dropped, markers;
	int wrong; /* verdicts against the contract (no cmocka off the main thread) */
};

static void
tally(struct race *r, enum handover_verdict v, bool marker, int want)
{
	r->calls++;
	if (marker) {
		r->markers++;
		r->wrong += v != DROP;
		return;
	}
	if (v == PASS)
		r->passed++;
	else
		r->dropped++;
	r->wrong += want >= 0 && (int)v != want;
}

static void *
race_gate(void *arg)
{
	struct race *r = arg;
	/* K before its marker, and after: DISCOVERY PASS then DROP; SHARD
	 * the other way round. */
	int before = r->role == HANDOVER_DISCOVERY ? PASS : DROP;
	int after = r->role == HANDOVER_DISCOVERY ? DROP : PASS;
	char topic[64];

	do {
		for (int i = 0; i < NA; i++) {
			snprintf(topic, sizeof(topic), "cordon/A%d/gate/g1/event", i);
			tally(r, gate(r->h, topic), false, -1);
			snprintf(topic, sizeof(topic), "cordon/A%d/_handover", i);
			tally(r, gate(r->h, topic), true, -1);
		}
		tally(r, gate(r->h, "cordon/other/gate/g1/event"), false, PASS);
		tally(r, gate(r->h, "elsewhere/K/gate/g1/event"), false, PASS);
		if (r->passes == 0) {
			tally(r, gate(r->h, "cordon/K/gate/g1/event"), false, before);
			tally(r, gate(r->h, "cordon/K/_handover"), true, -1);
		}
		tally(r, gate(r->h, "cordon/K/gate/g1/event"), false, after);
		r->passes++;
	} while (r->passes < 2000 || atomic_load(&r->rounds) < 2000);
	atomic_store(&r->done, true);
	return NULL;
}

static void
race(enum handover_role role)
{
	struct race r = { .role = role };
	struct fake_spool sp = { .end = 1 };
	struct handover_site sets[2][NA / 2 + 1];
	char names[NA][8];
	struct mqtt_subs_list send;
	struct handover_cut cut;
	struct handover_stats st;
	size_t cuts = 0, k_sent = 0;
	pthread_t t;

	for (int i = 0; i < NA; i++)
		snprintf(names[i], sizeof(names[i]), "A%d", i);
	for (int s = 0; s < 2; s++) {
		sets[s][0] = (struct handover_site){ "K", 0 };
		for (int i = 0; i < NA / 2; i++)
			sets[s][i + 1] = (struct handover_site){ names[2 * i + s], 0 };
	}
	/* The fake spool is read on the gate's thread only (under its lock). */
	assert_int_equal(handover_create("cordon", role, fake_end, &sp, &r.h), 0);
	assert_int_equal(handover_set_sites(r.h, sets[0], NA / 2 + 1, &send), 0);
	free(send.names);
	atomic_store(&r.rounds, 1);
	assert_int_equal(pthread_create(&t, NULL, race_gate, &r), 0);
	while (!atomic_load(&r.done)) {
		size_t n = atomic_load(&r.rounds);

		assert_int_equal(handover_set_sites(r.h, sets[n % 2], NA / 2 + 1, &send), 0);
		for (size_t i = 0; i < send.n; i++)
			k_sent += strcmp(send.names[i], "K") == 0;
		free(send.names);
		atomic_store(&r.rounds, n + 1);
		while (handover_next_cut(r.h, &cut))
			cuts++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	while (handover_next_cut(r.h, &cut))
		cuts++;

	assert_int_equal(r.wrong, 0);
	assert_int_equal(k_sent, 0); /* K kept: never new again */
	handover_get_stats(r.h, &st);
	assert_int_equal(st.passed, r.passed);
	assert_int_equal(st.dropped, r.dropped);
	assert_int_equal(st.markers, r.markers);
	assert_int_equal(st.passed + st.dropped + st.markers, r.calls);
	assert_int_equal(r.markers, r.passes * NA + 1);
	assert_true(st.cuts >= 1); /* K's, at least */
	if (role == HANDOVER_DISCOVERY)
		assert_int_equal(cuts, st.cuts);
	else
		assert_int_equal(cuts, 0);
	assert_int_equal(st.sites, NA / 2 + 1);
	handover_destroy(r.h);
}

static void
two_threads_discovery(void **state)
{
	(void)state;
	race(HANDOVER_DISCOVERY);
}

static void
two_threads_shard(void **state)
{
	(void)state;
	race(HANDOVER_SHARD);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(discovery_flow),
		cmocka_unit_test(shard_flow),
		cmocka_unit_test(topic_edges),
		cmocka_unit_test(cut_queue),
		cmocka_unit_test(registered_again),
		cmocka_unit_test(bad_root),
		cmocka_unit_test(two_threads_discovery),
		cmocka_unit_test(two_threads_shard),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
