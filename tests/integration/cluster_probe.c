/* cluster_probe - the cluster thread (include/cluster.h) as cordond's main
 * loop would drive it, without MQTT; tests/integration/test_cluster_leases.py
 * runs several against one PostgreSQL.
 *
 *   cluster_probe CONFIG
 *
 * CONFIG is a cordond configuration file ([postgres] conninfo, [mqtt]
 * client_id, [cluster] shards and lease_time, [metrics] listen). It starts
 * the thread and prints one JSON line on stdout (flushed) at each change of
 * the view, and one at SIGUSR1 ("why":"usr1"):
 *
 *   {"why":"change","gen":7,"db_ok":true,"alive":3,"fair":6,"stopped":false,
 *    "acquired":6,"released":0,"lost":0,"failures":0,
 *    "shards":{"3":{"state":"owned","epoch":2,"left_ms":8712,"may_act":true},...}}
 *
 * listing the shards not NOT_OWNED, with left_ms = deadline - now and
 * may_act = cluster_may_act() at the time of printing (CLOCK_MONOTONIC).
 * A RELEASING shard is released at once (cluster_released()). SIGUSR2
 * says the session of the lowest OWNED shard was taken over
 * (cluster_session_lost(), printed first as {"session_lost":N}). SIGTERM or
 * SIGINT calls cluster_stop_begin(); once the view says stopped it prints
 * {"exit":"stopped"} and exits 0. A fatal misconfiguration prints
 * {"fatal":"..."} and exits 3; a usage or setup error exits 2. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clocks.h"
#include "cluster.h"
#include "config.h"
#include "log.h"

static const char *
state_name(enum cluster_shard_state s)
{
	switch (s) {
	case CLUSTER_OWNED: return "owned";
	case CLUSTER_RELEASING: return "releasing";
	default: return "not_owned";
	}
}

static void
print_json(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (!text)
		exit(2);
	printf("%s\n", text);
	fflush(stdout);
	free(text);
}

static void
print_view(const struct cluster_view *v, const char *why)
{
	int64_t now = clocks_mono_ms();
	json_t *shards = json_object();
	json_t *o = json_pack("{s:s, s:I, s:b, s:i, s:i, s:b, s:I, s:I, s:I, s:I}", "why", why,
			      "gen", (json_int_t)v->generation, "db_ok", v->db_ok, "alive",
			      v->instances_alive, "fair", v->fair_share, "stopped", v->stopped,
			      "acquired", (json_int_t)v->acquired, "released",
			      (json_int_t)v->released, "lost", (json_int_t)v->lost, "failures",
			      (json_int_t)v->renew_failures);

	if (!o || !shards)
		exit(2);
	for (int s = 0; s < v->nshards; s++) {
		const struct cluster_shard *cs = &v->shard[s];
		char key[16];

		if (cs->state == CLUSTER_NOT_OWNED)
			continue;
		snprintf(key, sizeof(key), "%d", s);
		json_object_set_new(shards, key,
				    json_pack("{s:s, s:I, s:I, s:b}", "state",
					      state_name(cs->state), "epoch", (json_int_t)cs->epoch,
					      "left_ms", (json_int_t)(cs->deadline_ms - now),
					      "may_act", cluster_may_act(v, s, now)));
	}
	json_object_set_new(o, "shards", shards);
	print_json(o);
}

/* The lowest OWNED shard's session was taken over. */
static void
session_lost(struct cluster *c)
{
	static struct cluster_view v;

	cluster_view(c, &v);
	for (int s = 0; s < v.nshards; s++) {
		if (v.shard[s].state == CLUSTER_OWNED) {
			print_json(json_pack("{s:i}", "session_lost", s));
			cluster_session_lost(c, s, v.shard[s].epoch);
			return;
		}
	}
}

int
main(int argc, char **argv)
{
	static struct cluster_view v;
	struct config cfg;
	struct cluster *c = NULL;
	uint64_t shown = 0;
	sigset_t mask;
	int wake, sigfd, rc;
	bool stopping = false;

	if (argc != 2) {
		fprintf(stderr, "usage: cluster_probe CONFIG\n");
		return 2;
	}
	log_init();
	if (config_init(&cfg) < 0 || config_load(&cfg, argv[1], stderr) < 0)
		return 2;
	log_set_level((enum log_level)cfg.log_level);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL); /* before the thread: it inherits it */
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sigfd < 0 || wake < 0)
		return 2;
	rc = cluster_create(&cfg, wake, &c);
	if (rc < 0) {
		fprintf(stderr, "cluster_probe: cluster_create: %s\n", strerror(-rc));
		return 2;
	}
	for (;;) {
		struct pollfd fds[2] = { { .fd = wake, .events = POLLIN },
					 { .fd = sigfd, .events = POLLIN } };
		const char *why = "change";
		const char *fatal;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			return 2;
		if (fds[0].revents) {
			eventfd_t n;

			(void)eventfd_read(wake, &n);
		}
		if (fds[1].revents) {
			struct signalfd_siginfo si;

			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR1) {
					why = "usr1";
				} else if (si.ssi_signo == SIGUSR2) {
					session_lost(c);
				} else if (!stopping) {
					stopping = true;
					cluster_stop_begin(c);
				}
			}
		}
		fatal = cluster_fatal(c);
		if (fatal) {
			print_json(json_pack("{s:s}", "fatal", fatal));
			cluster_destroy(c);
			config_finish(&cfg);
			return 3;
		}
		cluster_view(c, &v);
		if (v.generation != shown || strcmp(why, "usr1") == 0) {
			shown = v.generation;
			print_view(&v, why);
		}
		for (int s = 0; s < v.nshards; s++)
			if (v.shard[s].state == CLUSTER_RELEASING)
				cluster_released(c, s, 0);
		if (stopping && v.stopped)
			break;
	}
	print_json(json_pack("{s:s}", "exit", "stopped"));
	cluster_destroy(c);
	config_finish(&cfg);
	close(wake);
	close(sigfd);
	return 0;
}
