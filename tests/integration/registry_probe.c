/* registry_probe - the register thread (include/registry.h) as cordond's
 * main loop would drive it, without MQTT: the hand-over steps and the
 * seeds of shards; tests/integration/test_register_handover.py runs it.
 *
 *   registry_probe CONNINFO
 *
 * It starts the thread (default zone Asia/Shanghai, the first seed of
 * site "_daemon" only) and reads commands on stdin, one a line:
 *
 *   note SITE SHARD STEP    registry_note_handover(); STEP is a number
 *                           (1 HANDOVER_SENT, 2 HANDOVER_DISCOVERY_CUT)
 *   pending                 registry_handovers_pending()
 *   discovery 0|1           registry_set_discovery()
 *   seed NSHARDS SHARD TAG  registry_seed_shard()
 *
 * each answered by one JSON line on stdout (flushed) with "seq", the
 * command's number from 1: {"seq":3,"note":0}, {"seq":4,"pending":2},
 * {"seq":5,"discovery":true}, {"seq":6,"seed":"asked"}; an unknown
 * command: {"seq":7,"error":"..."}. Whenever the thread hands over a
 * snapshot or a seed, a line of its own:
 *
 *   {"snapshot":GEN,"sites":{"s1":0,"s2":3}}   each site's reg_site.handover
 *   {"seed":[TAG,...],"nsites":N,"alerts":["s1","s2"]}
 *
 * the seed's shard tags (0: a shard not in it), the number of sites it was
 * read for and the sites of its open alerts (sorted, each once). EOF on
 * stdin ends it (exit 0); a usage or setup error exits 2. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"

static void
print_json(json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(o);
	if (!text)
		exit(2);
	printf("%s\n", text);
	fflush(stdout);
	free(text);
}

static void
print_snapshot(const struct registry_snapshot *s)
{
	json_t *sites = json_object();

	if (!sites)
		exit(2);
	for (size_t i = 0; i < s->nsites; i++)
		json_object_set_new(sites, s->sites[i].site, json_integer(s->sites[i].handover));
	print_json(json_pack("{s:I, s:o}", "snapshot", (json_int_t)s->generation, "sites", sites));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
print_seed(const struct registry_seed *seed)
{
	json_t *tags = json_array(), *alerts = json_array();
	const char **sites = calloc(seed->nalerts + 1, sizeof(*sites));

	if (!tags || !alerts || !sites)
		exit(2);
	for (int i = 0; i < seed->nshards; i++)
		json_array_append_new(tags, json_integer(seed->shard_tags[i]));
	for (size_t i = 0; i < seed->nalerts; i++)
		sites[i] = seed->alerts[i].site;
	qsort(sites, seed->nalerts, sizeof(*sites), cmp_str);
	for (size_t i = 0; i < seed->nalerts; i++)
		if (i == 0 || strcmp(sites[i], sites[i - 1]) != 0)
			json_array_append_new(alerts, json_string(sites[i]));
	free(sites);
	print_json(json_pack("{s:o, s:I, s:o}", "seed", tags, "nsites", (json_int_t)seed->nsites,
			     "alerts", alerts));
}

/* One command line (NUL-terminated, no newline), answered. */
static void
command(struct registry *r, long seq, const char *line)
{
	char site[128];
	int shard, nshards, on;
	unsigned step;
	long long tag;

	if (sscanf(line, "note %127s %d %u", site, &shard, &step) == 3)
		print_json(json_pack("{s:i, s:i}", "seq", (int)seq, "note",
				     registry_note_handover(r, site, shard, step)));
	else if (strcmp(line, "pending") == 0)
		print_json(json_pack("{s:i, s:I}", "seq", (int)seq, "pending",
				     (json_int_t)registry_handovers_pending(r)));
	else if (sscanf(line, "discovery %d", &on) == 1) {
		registry_set_discovery(r, on != 0);
		print_json(json_pack("{s:i, s:b}", "seq", (int)seq, "discovery", on != 0));
	} else if (sscanf(line, "seed %d %d %lld", &nshards, &shard, &tag) == 3) {
		registry_seed_shard(r, nshards, shard, (int64_t)tag);
		print_json(json_pack("{s:i, s:s}", "seq", (int)seq, "seed", "asked"));
	} else
		print_json(json_pack("{s:i, s:s}", "seq", (int)seq, "error", "unknown command"));
}

int
main(int argc, char **argv)
{
	struct registry *r;
	char buf[4096];
	size_t have = 0;
	long seq = 0;
	int wake, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: registry_probe CONNINFO\n");
		return 2;
	}
	log_init();
	wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake < 0)
		return 2;
	rc = registry_create(argv[1], "Asia/Shanghai", wake, 100, "_daemon", &r);
	if (rc < 0) {
		fprintf(stderr, "registry_probe: registry_create: %s\n", strerror(-rc));
		return 2;
	}
	for (;;) {
		struct pollfd fds[2] = { { .fd = wake, .events = POLLIN },
					 { .fd = STDIN_FILENO, .events = POLLIN } };
		struct registry_snapshot *s;
		struct registry_seed *seed;
		eventfd_t v;
		ssize_t got;
		char *nl;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		if (fds[0].revents & POLLIN) {
			if (eventfd_read(wake, &v) < 0) {
				/* EAGAIN: nothing new */
			}
			if ((s = registry_take(r)) != NULL) {
				print_snapshot(s);
				registry_snapshot_free(s);
			}
			while ((seed = registry_take_seed(r)) != NULL) {
				print_seed(seed);
				registry_seed_free(seed);
			}
		}
		if (!(fds[1].revents & (POLLIN | POLLHUP)))
			continue;
		got = read(STDIN_FILENO, buf + have, sizeof(buf) - 1 - have);
		if (got <= 0)
			break;
		have += (size_t)got;
		buf[have] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			command(r, ++seq, buf);
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
		if (have == sizeof(buf) - 1)
			have = 0; /* a line too long: dropped */
	}
	registry_destroy(r);
	close(wake);
	return 0;
}
