/* test_replay.c - the replay memory (replay.c) against a plain model:
 * depth, LRU eviction, the index under deletions, save and load. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay.h"

#define ID "0123456789abcdef0123456789abcdef"

/* The model: topics in delivery order (latest last), each with its last
 * REPLAY_DEPTH distinct payloads (latest first). */
struct mtopic {
	uint64_t topic;
	uint64_t h[REPLAY_DEPTH];
	unsigned n;
};

struct model {
	struct mtopic *t;
	size_t n, max;
};

static void
model_note(struct model *m, uint64_t topic, uint64_t h)
{
	struct mtopic cur = { .topic = topic };
	size_t i, k;

	for (i = 0; i < m->n && m->t[i].topic != topic; i++)
		;
	if (i < m->n) {
		cur = m->t[i];
		memmove(&m->t[i], &m->t[i + 1], (m->n - i - 1) * sizeof(*m->t));
		m->n--;
	} else if (m->n == m->max) {
		memmove(&m->t[0], &m->t[1], (m->n - 1) * sizeof(*m->t)); /* LRU goes */
		m->n--;
	}
	for (k = 0; k < cur.n && cur.h[k] != h; k++)
		;
	if (k == cur.n) {
		if (cur.n < REPLAY_DEPTH)
			cur.n++;
		k = cur.n - 1;
	}
	memmove(&cur.h[1], &cur.h[0], k * sizeof(cur.h[0]));
	cur.h[0] = h;
	m->t[m->n++] = cur;
}

static int
model_seen(const struct model *m, uint64_t topic, uint64_t h)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->t[i].topic == topic)
			for (unsigned k = 0; k < m->t[i].n; k++)
				if (m->t[i].h[k] == h)
					return 1;
	return 0;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A status topic whose retained payload goes offline, online, offline:
 * the topic's last REPLAY_DEPTH payloads are seen, one it never had or
 * had before those is not, nor the same payload on another topic. */
static void
remembers_the_last_payloads(void **state)
{
	struct replay *r;
	uint64_t t = replay_topic_hash("cordon/s1/gate/G01/status", 25);
	uint64_t off = replay_payload_hash("offline", 7, 7);
	uint64_t on = replay_payload_hash("online", 6, 6);

	(void)state;
	assert_int_equal(replay_create(16, &r), 0);
	assert_false(replay_seen(r, t, off));
	assert_int_equal(replay_note(r, t, off), 0);
	assert_true(replay_seen(r, t, off));
	assert_int_equal(replay_note(r, t, on), 0);
	assert_true(replay_seen(r, t, on));
	assert_int_equal(replay_seen(r, t, off), REPLAY_DEPTH > 1);
	assert_int_equal(replay_note(r, t, off), 0);
	assert_true(replay_seen(r, t, off));
	assert_false(replay_seen(r, t, replay_payload_hash("forced", 6, 6)));
	assert_false(replay_seen(r, replay_topic_hash("cordon/s1/gate/G02/status", 25), off));
	/* a payload cut at max_payload hashes with its length as received */
	assert_true(replay_payload_hash("offline", 7, 7) != replay_payload_hash("offline", 7, 9));
	/* the oldest of REPLAY_DEPTH + 1 distinct payloads goes */
	for (uint64_t h = 1; h <= REPLAY_DEPTH; h++)
		assert_int_equal(replay_note(r, t, h), 0);
	assert_false(replay_seen(r, t, off));
	for (uint64_t h = 1; h <= REPLAY_DEPTH; h++)
		assert_true(replay_seen(r, t, h));
	replay_destroy(r);
}

/* Random deliveries over more topics than fit, checked against the model
 * after each step; then saved, loaded and checked again. */
static void
matches_the_model(void **state)
{
	const size_t max = 300;
	struct model m = { .t = calloc(max, sizeof(struct mtopic)), .max = max };
	struct replay *r, *r2;
	struct replay_stats st;
	uint64_t seed = 88172645463325252ull, pos;
	void *buf;
	size_t len;

	(void)state;
	assert_int_equal(replay_create((uint32_t)max, &r), 0);
	for (int step = 0; step < 200000; step++) {
		uint64_t topic = rnd(&seed) % 700, h = rnd(&seed) % 12;

		assert_int_equal(replay_note(r, topic, h), 0);
		model_note(&m, topic, h);
		topic = rnd(&seed) % 700;
		h = rnd(&seed) % 12;
		if (replay_seen(r, topic, h) != model_seen(&m, topic, h))
			fail_msg("step %d: topic %llu payload %llu: %d, the model says %d", step,
				 (unsigned long long)topic, (unsigned long long)h,
				 replay_seen(r, topic, h), model_seen(&m, topic, h));
	}
	replay_get_stats(r, &st);
	assert_int_equal(st.topics, max);
	assert_true(st.evicted > 0);
	assert_int_equal(replay_save(r, ID, 4242, &buf, &len), 0);
	assert_int_equal(replay_create((uint32_t)max, &r2), 0);
	assert_int_equal(replay_load(r2, buf, len, ID, &pos), 0);
	assert_true(pos == 4242);
	for (uint64_t topic = 0; topic < 700; topic++)
		for (uint64_t h = 0; h < 12; h++)
			assert_int_equal(replay_seen(r2, topic, h), model_seen(&m, topic, h));
	/* the delivery order survives: the next eviction is the model's */
	assert_int_equal(replay_note(r2, 100000, 1), 0);
	model_note(&m, 100000, 1);
	for (uint64_t topic = 0; topic < 700; topic++)
		assert_int_equal(replay_seen(r2, topic, 0) || replay_seen(r2, topic, 1) ||
					 replay_seen(r2, topic, 2),
				 model_seen(&m, topic, 0) || model_seen(&m, topic, 1) ||
					 model_seen(&m, topic, 2));
	free(buf);
	free(m.t);
	replay_destroy(r);
	replay_destroy(r2);
}

/* A damaged, cut or foreign file is refused and leaves the memory empty. */
static void
refuses_damaged_files(void **state)
{
	struct replay *r;
	uint64_t pos = 7;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(replay_create(64, &r), 0);
	for (uint64_t t = 0; t < 40; t++)
		assert_int_equal(replay_note(r, t, t * 3), 0);
	assert_int_equal(replay_save(r, ID, 99, (void **)&buf, &len), 0);
	assert_int_equal(replay_load(r, buf, len, "ffffffffffffffffffffffffffffffff", &pos),
			 -ESTALE);
	assert_false(replay_seen(r, 1, 3));
	for (size_t i = 0; i < len; i += 7) {
		buf[i] ^= 0x20;
		assert_int_equal(replay_load(r, buf, len, ID, &pos), -EINVAL);
		buf[i] ^= 0x20;
	}
	assert_int_equal(replay_load(r, buf, len - 8 * (2 + REPLAY_DEPTH), ID, &pos), -EINVAL);
	assert_int_equal(replay_load(r, buf, 10, ID, &pos), -EINVAL);
	assert_true(pos == 7);
	assert_false(replay_seen(r, 1, 3));
	assert_int_equal(replay_load(r, buf, len, ID, &pos), 0);
	assert_true(pos == 99);
	assert_true(replay_seen(r, 1, 3));
	free(buf);
	replay_destroy(r);
}

/* An empty memory (a shard session started empty) copies and saves:
 * it has no slots at all (found by UBSan: memcpy from NULL). */
static void
copies_an_empty_memory(void **state)
{
	struct replay *r, *copy = NULL, *back;
	uint64_t pos;
	void *buf;
	size_t len;

	(void)state;
	assert_int_equal(replay_create(16, &r), 0);
	assert_int_equal(replay_copy(&copy, r), 0);
	assert_int_equal(replay_save(copy, ID, 7, &buf, &len), 0);
	assert_int_equal(replay_create(16, &back), 0);
	assert_int_equal(replay_load(back, buf, len, ID, &pos), 0);
	assert_int_equal(pos, 7);
	free(buf);
	replay_destroy(back);
	replay_destroy(copy);
	replay_destroy(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(remembers_the_last_payloads),
		cmocka_unit_test(matches_the_model),
		cmocka_unit_test(refuses_damaged_files),
		cmocka_unit_test(copies_an_empty_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
