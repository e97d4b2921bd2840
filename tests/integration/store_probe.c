/* store_probe - one batch through the store (include/store.h) against a
 * database, as cordond's pipeline hands it; test_cluster_rules.py drives
 * it to see the fencing of alert rows (docs/scaling.md, "Fencing").
 *
 *   store_probe CONNINFO < LINES
 *
 * Each line of stdin adds to the batch:
 *   event SITE KEY                       a gate event (36.6, gate G1)
 *   alert SITE SHARD EPOCH ALERT_ID      a fever raised (shard -1: not fenced)
 * The batch is submitted once, waited for (committed) and the store's
 * stats printed as one JSON line: {"fenced":N,"events":N}. Exit 0; 1 on a
 * bad line, 2 when the batch is not committed within 60 s. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clocks.h"
#include "store.h"
#include "tables.h"

static int
add_line(struct store_batch *b, char *line, int64_t now)
{
	char what[16], site[NORM_ID_MAX + 1], key[NORM_KEY_MAX], id[33];
	int shard;
	long long epoch;

	if (sscanf(line, "%15s", what) != 1)
		return 0; /* an empty line */
	if (strcmp(what, "event") == 0 && sscanf(line, "%*s %64s %127s", site, key) == 2) {
		struct event ev;

		memset(&ev, 0, sizeof(ev));
		ev.type = EVENT_GATE;
		snprintf(ev.site, sizeof(ev.site), "%s", site);
		snprintf(ev.gate, sizeof(ev.gate), "G1");
		snprintf(ev.key, sizeof(ev.key), "%s", key);
		ev.device_us = ev.received_us = ev.rule_us = now;
		ev.temp_dc = 366;
		ev.direction = DIR_IN;
		ev.mask = -1;
		ev.urgent = -1;
		ev.vendor = "canonical";
		tables_content_hash(&ev, ev.content_hash);
		return store_batch_add_event(b, &ev);
	}
	if (strcmp(what, "alert") == 0 &&
	    sscanf(line, "%*s %64s %d %lld %32s", site, &shard, &epoch, id) == 4) {
		struct alert_transition t;

		memset(&t, 0, sizeof(t));
		t.what = "raised";
		t.a.kind = KIND_FEVER;
		t.a.severity = SEVERITY_WARNING;
		t.a.state = ALERT_RAISED;
		snprintf(t.a.alert_id, sizeof(t.a.alert_id), "%s", id);
		snprintf(t.a.site, sizeof(t.a.site), "%s", site);
		snprintf(t.a.subject, sizeof(t.a.subject), "person:P-%s", id);
		snprintf(t.a.event_key, sizeof(t.a.event_key), "%s/G1/%s", site, id);
		snprintf(t.a.gate, sizeof(t.a.gate), "G1");
		t.a.temp_dc = 380;
		t.a.raised_us = t.a.updated_us = now;
		t.a.count = 1;
		return store_batch_add_alert(b, &t, shard, (int64_t)epoch);
	}
	return -EINVAL;
}

int
main(int argc, char **argv)
{
	struct store_options opt = {
		.instance = "store-probe",
		.spool_id = "store-probe-spool",
		.topic_root = "cordon",
	};
	struct store_batch *b = calloc(1, sizeof(*b));
	struct store *store = NULL;
	struct store_stats st;
	char line[512];
	int64_t now = clocks_wall_us(), deadline;
	int fd = eventfd(0, EFD_CLOEXEC), rc = 0;

	if (argc != 2 || !b || fd < 0) {
		fprintf(stderr, "usage: store_probe CONNINFO < LINES\n");
		return 1;
	}
	opt.conninfo = argv[1];
	while (fgets(line, sizeof(line), stdin))
		if (add_line(b, line, now) < 0) {
			fprintf(stderr, "store_probe: bad line: %s", line);
			return 1;
		}
	b->end_pos = 1;
	if (store_create(&opt, fd, &store) < 0)
		return 1;
	deadline = clocks_mono_ms() + 60000;
	while (store_submit(store, b) < 0 && clocks_mono_ms() < deadline)
		usleep(10000);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (store_take_done(store) == b)
			break;
		if (clocks_mono_ms() >= deadline) {
			fprintf(stderr, "store_probe: the batch was not committed within 60 s\n");
			rc = 2;
			break;
		}
		(void)poll(&p, 1, 100);
		if (p.revents & POLLIN) {
			eventfd_t v;

			(void)eventfd_read(fd, &v);
		}
	}
	store_get_stats(store, &st);
	printf("{\"fenced\":%" PRIu64 ",\"events\":%" PRIu64 "}\n", st.alert_rows_fenced,
	       st.events_written);
	store_destroy(store);
	store_batch_free(b);
	close(fd);
	return rc;
}
