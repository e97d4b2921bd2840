/* Unit tests of mqtt_link.c: the MQTT client's connection converges to
 * the one wanted whatever order the pause, the resume, the publish
 * thread and Paho's callbacks come in.
 *
 * A model of mqtt_client.c's three parties: the main loop (pause, resume,
 * tick: each asks mqtt_link_next() and queues what it says), the publish
 * thread (runs the queue: a connect, or the pause's disconnect, which it
 * may stop waiting for while Paho still works on it) and Paho (completes
 * a connect or a disconnect, or loses the link, at any moment; a connect's
 * onSuccess5 comes before on_connected marks the link up). Every
 * interleaving is explored; from every state reached, once nothing new
 * happens, a few rounds of ticks must bring the link to the one wanted
 * and must never connect beside a connect or a disconnect under way.
 *
 * The same exploration with the edge-triggered logic cordond had before
 * (a resume queued one connect, which the publish thread skipped while
 * Paho still said connected; the tick reconnected only after a loss or a
 * failure) finds the lost resume of test_backpressure's failed run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "mqtt_link.h"

enum cmd { CMD_CONNECT = 1, CMD_DISCONNECT };
enum op { OP_NONE, OP_CONNECT, OP_DISCONNECT };
enum policy { LEVEL, EDGE };

struct model {
	/* main thread */
	bool paused;
	bool retry; /* EDGE: the lost / connect_failed flags */
	/* the publish thread's queue */
	uint8_t q[4];
	int nq;
	/* what the client's flags say */
	bool up, connecting, disconnecting;
	/* Paho */
	bool paho_up;
	bool callback_due; /* the connect's onSuccess5 ran, on_connected not yet */
	enum op op;
	/* what may still happen */
	int toggles, losses, failures;
	bool broken; /* two operations at once in Paho */
};

static void
push(struct model *m, enum cmd c)
{
	if (m->nq == 4) {
		m->broken = true; /* unbounded queueing */
		return;
	}
	m->q[m->nq++] = (uint8_t)c;
}

/* The main loop's look (mqtt_client_tick, and mqtt_client_pause and
 * _resume, which look at once). */
static void
reconcile(struct model *m, enum policy p)
{
	if (p == EDGE) {
		if (m->retry && !m->paused && !m->up && !m->connecting) {
			m->retry = false;
			push(m, CMD_CONNECT);
		}
		return;
	}
	struct mqtt_link_view v = {
		.want_up = !m->paused,
		.up = m->up,
		.connecting = m->connecting,
		.disconnecting = m->disconnecting,
		.queued = m->nq > 0,
	};
	switch (mqtt_link_next(&v)) {
	case MQTT_LINK_CONNECT: push(m, CMD_CONNECT); break;
	case MQTT_LINK_DISCONNECT: push(m, CMD_DISCONNECT); break;
	default: break;
	}
}

static void
ask_pause(struct model *m, enum policy p)
{
	m->paused = true;
	if (p == EDGE) {
		m->retry = false;
		push(m, CMD_DISCONNECT);
	} else {
		reconcile(m, p);
	}
}

static void
ask_resume(struct model *m, enum policy p)
{
	m->paused = false;
	if (p == EDGE) {
		m->retry = false;
		push(m, CMD_CONNECT);
	} else {
		reconcile(m, p);
	}
}

/* Can the publish thread run its next command now? The pause's
 * disconnect first waits for a connect under way. */
static bool
out_ready(const struct model *m)
{
	return m->nq > 0 && !(m->q[0] == CMD_DISCONNECT && m->connecting);
}

/* The publish thread runs one command (and may then go on without
 * waiting for Paho: the pause's wait can time out). */
static void
out_step(struct model *m, enum policy p)
{
	enum cmd c = m->q[0];

	memmove(m->q, m->q + 1, (size_t)--m->nq);
	if (c == CMD_CONNECT) {
		/* One connect at a time, and none on a live link. */
		if (m->connecting || m->paho_up) {
			if (p == LEVEL)
				m->retry = true; /* only the backoff reads it */
			return;
		}
		if (m->op != OP_NONE)
			m->broken = true;
		m->connecting = true;
		m->op = OP_CONNECT;
	} else {
		if (!m->paho_up)
			return; /* Paho answers at once: nothing to do */
		if (m->op != OP_NONE)
			m->broken = true;
		m->disconnecting = true;
		m->op = OP_DISCONNECT;
	}
}

/* Paho completes what it works on. */
static void
paho_step(struct model *m, bool fail)
{
	if (m->op == OP_CONNECT) {
		if (fail) {
			m->retry = true;
		} else {
			m->paho_up = true;
			m->callback_due = true;
		}
		m->connecting = false;
	} else if (m->op == OP_DISCONNECT) {
		m->paho_up = false;
		m->up = false;
		m->disconnecting = false;
	}
	m->op = OP_NONE;
}

/* on_connected, which Paho calls after the connect's onSuccess5. */
static void
paho_connected(struct model *m)
{
	m->up = true;
	m->callback_due = false;
}

static void
paho_lose(struct model *m)
{
	m->paho_up = false;
	m->up = false;
	m->retry = true;
}

/* With nothing new happening: ticks, the publish thread and Paho get
 * their turns; true when the link ends as wanted. */
static bool
converges(struct model m, enum policy p)
{
	for (int round = 0; round < 20 && !m.broken; round++) {
		reconcile(&m, p);
		while (out_ready(&m))
			out_step(&m, p);
		paho_step(&m, false);
		if (m.callback_due)
			paho_connected(&m);
		if (m.nq == 0 && m.op == OP_NONE && m.paho_up == !m.paused)
			return !m.broken;
	}
	return false;
}

/* A state as a number (struct copies need not copy padding). */
static uint64_t
key(const struct model *m)
{
	uint64_t k = m->paused;

	k = k << 1 | m->retry;
	for (int i = 0; i < 4; i++)
		k = k << 2 | (i < m->nq ? m->q[i] : 0);
	k = k << 3 | (uint64_t)m->nq;
	k = k << 1 | m->up;
	k = k << 1 | m->connecting;
	k = k << 1 | m->disconnecting;
	k = k << 1 | m->paho_up;
	k = k << 1 | m->callback_due;
	k = k << 2 | (uint64_t)m->op;
	k = k << 4 | (uint64_t)m->toggles;
	k = k << 2 | (uint64_t)m->losses;
	k = k << 2 | (uint64_t)m->failures;
	k = k << 1 | m->broken;
	return k + 1; /* 0: an empty slot */
}

#define SLOTS (1u << 18)

struct search {
	enum policy policy;
	uint64_t slot[SLOTS];
	int nseen;
	int stuck, broken;
};

static bool
visited(struct search *s, const struct model *m)
{
	uint64_t k = key(m);
	uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15u) >> 46);

	while (s->slot[i]) {
		if (s->slot[i] == k)
			return true;
		i = (i + 1) & (SLOTS - 1);
	}
	s->slot[i] = k;
	s->nseen++;
	return false;
}

static void
explore(struct search *s, struct model m)
{
	struct model n;

	if (visited(s, &m))
		return;
	if (m.broken) {
		s->broken++;
		return;
	}
	if (!converges(m, s->policy))
		s->stuck++;
	if (m.toggles > 0) {
		n = m;
		n.toggles--;
		if (n.paused)
			ask_resume(&n, s->policy);
		else
			ask_pause(&n, s->policy);
		explore(s, n);
	}
	n = m;
	reconcile(&n, s->policy);
	explore(s, n);
	if (out_ready(&m)) {
		n = m;
		out_step(&n, s->policy);
		explore(s, n);
	}
	if (m.op != OP_NONE) {
		n = m;
		paho_step(&n, false);
		explore(s, n);
		if (m.op == OP_CONNECT && m.failures > 0) {
			n = m;
			n.failures--;
			paho_step(&n, true);
			explore(s, n);
		}
	}
	if (m.callback_due) {
		n = m;
		paho_connected(&n);
		explore(s, n);
	}
	if (m.paho_up && !m.callback_due && m.op == OP_NONE && m.losses > 0) {
		n = m;
		n.losses--;
		paho_lose(&n);
		explore(s, n);
	}
}

static struct model
start_up(void)
{
	struct model m;

	memset(&m, 0, sizeof(m));
	m.up = m.paho_up = true;
	m.toggles = 6;
	m.losses = 2;
	m.failures = 2;
	return m;
}

static struct search *
run(enum policy p)
{
	static struct search s;

	memset(&s, 0, sizeof(s));
	s.policy = p;
	explore(&s, start_up());
	return &s;
}

static void
every_ordering_converges(void **state)
{
	struct search *s = run(LEVEL);

	(void)state;
	assert_true(s->nseen > 200);
	assert_true(s->nseen < (int)SLOTS / 2);
	assert_int_equal(s->broken, 0);
	assert_int_equal(s->stuck, 0);
}

/* The exploration is able to find the fault: the edge-triggered logic
 * loses resumes. */
static void
edge_triggered_loses_the_resume(void **state)
{
	struct search *s = run(EDGE);

	(void)state;
	assert_true(s->nseen < (int)SLOTS / 2);
	assert_true(s->stuck > 0);
}

/* The ordering of the failed run, step by step: the pause's disconnect
 * is queued in Paho behind a receive callback waiting for spool space;
 * the publish thread stops waiting for it; the resume comes while Paho
 * still says connected; then the disconnect completes. */
static void
resume_during_the_pause_disconnect(void **state)
{
	struct model m = start_up();

	(void)state;
	ask_pause(&m, LEVEL);
	assert_int_equal(m.nq, 1);
	out_step(&m, LEVEL); /* MQTTAsync_disconnect queued; the 5 s wait gives up */
	assert_true(m.disconnecting && m.paho_up);
	ask_resume(&m, LEVEL);
	assert_int_equal(m.nq, 0); /* nothing yet: the disconnect is under way */
	reconcile(&m, LEVEL);
	assert_int_equal(m.nq, 0);
	paho_step(&m, false); /* the broker's "Client cordond-test disconnected." */
	assert_false(m.paho_up);
	reconcile(&m, LEVEL); /* the next tick */
	assert_int_equal(m.nq, 1);
	assert_int_equal(m.q[0], CMD_CONNECT);
	out_step(&m, LEVEL);
	paho_step(&m, false);
	paho_connected(&m);
	assert_true(m.paho_up && m.up);
	reconcile(&m, LEVEL);
	assert_int_equal(m.nq, 0); /* converged: nothing more */

	/* The same with the old logic: nobody connects again. */
	m = start_up();
	ask_pause(&m, EDGE);
	out_step(&m, EDGE);
	ask_resume(&m, EDGE);
	out_step(&m, EDGE); /* skipped: Paho still says connected */
	paho_step(&m, false);
	for (int i = 0; i < 10; i++) {
		reconcile(&m, EDGE);
		assert_int_equal(m.nq, 0);
	}
	assert_false(m.paho_up);
}

static void
decisions(void **state)
{
	struct mqtt_link_view v = { .want_up = true };

	(void)state;
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_CONNECT);
	v.up = true;
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_NONE);
	v.want_up = false;
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_DISCONNECT);
	v.disconnecting = true;
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_WAIT);
	v = (struct mqtt_link_view){ .want_up = true, .connecting = true };
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_WAIT);
	v = (struct mqtt_link_view){ .want_up = true, .queued = true };
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_WAIT);
	v = (struct mqtt_link_view){ .want_up = false };
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_NONE);
	/* Stopping: the stop disconnects; no reconnect. */
	v = (struct mqtt_link_view){ .stopping = true };
	assert_int_equal(mqtt_link_next(&v), MQTT_LINK_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decisions),
		cmocka_unit_test(resume_during_the_pause_disconnect),
		cmocka_unit_test(every_ordering_converges),
		cmocka_unit_test(edge_triggered_loses_the_resume),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
