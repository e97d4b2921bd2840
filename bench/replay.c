/* bench/replay - the replay memory's costs (replay.c), figures only:
 * per delivery (look + note, as Paho's receive callback does), saving and
 * loading the file (the copy is what the receive callback waits for:
 * it is taken under the memory's lock), at 1,000 ... 262,144 topics (REPLAY_MAX_TOPICS).
 *
 * usage: build/bench-replay */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(void)
{
	static const uint32_t sizes[] = { 1000, 16384, 262144 };
	const char *id = "0123456789abcdef0123456789abcdef";

	printf("%10s %12s %12s %12s %12s %10s %10s\n", "topics", "ns/delivery", "copy ms",
	       "save ms", "load ms", "file MiB", "lookups/s");
	for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
		uint32_t n = sizes[z];
		struct replay *r, *r2;
		uint64_t seed = 1, pos, hits = 0;
		const int deliveries = 4000000;
		char topic[64], payload[128];
		double t0, t1, t1d, tc, t2, t3;
		void *buf;
		size_t len;

		if (replay_create(n, &r) < 0 || replay_create(n, &r2) < 0)
			return 1;
		t0 = now_s();
		for (int i = 0; i < deliveries; i++) {
			uint64_t t, p;
			int tl, pl;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			tl = snprintf(topic, sizeof(topic), "cordon/s%05u/gate/G%02u/event",
				      (unsigned)((seed >> 33) % n) / 16,
				      (unsigned)((seed >> 33) % 16));
			pl = snprintf(payload, sizeof(payload),
				      "{\"id\":\"%d\",\"ts\":1581849120,\"temp_c\":36.%d}", i,
				      (int)(seed >> 60));
			t = replay_topic_hash(topic, (size_t)tl);
			p = replay_payload_hash(payload, (size_t)pl, (size_t)pl);
			hits += (uint64_t)replay_seen(r, t, p);
			if (replay_note(r, t, p) < 0)
				return 1;
		}
		t1 = now_s();
		{
			struct replay *c = NULL;

			/* the first copy faults its pages in; cordond keeps it */
			if (replay_copy(&c, r) < 0)
				return 1;
			t1d = now_s();
			if (replay_copy(&c, r) < 0)
				return 1;
			tc = now_s();
			if (replay_save(c, id, 42, &buf, &len) < 0)
				return 1;
			replay_destroy(c);
		}
		t2 = now_s();
		if (replay_load(r2, buf, len, id, &pos) < 0)
			return 1;
		t3 = now_s();
		printf("%10u %12.0f %12.1f %12.1f %12.1f %10.1f %10.2g\n", n,
		       (t1 - t0) / deliveries * 1e9, (tc - t1d) * 1e3, (t2 - tc) * 1e3,
		       (t3 - t2) * 1e3, len / 1048576.0, deliveries / (t1 - t0));
		(void)hits;
		free(buf);
		replay_destroy(r);
		replay_destroy(r2);
	}
	return 0;
}
