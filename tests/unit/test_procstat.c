/* Unit tests of procstat.c's parsers with /proc text as Linux writes it
 * (proc(5)), and of the figures computed from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procstat.h"

/* /proc/self/stat of a cordond: utime 1234, stime 567, starttime
 * 2609571 ticks, vsize 3133440, rss 359 pages. */
static const char STAT[] =
	"21841 (cordond) S 1 21841 21841 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 12 0 "
	"2609571 3133440 359 18446744073709551615 94000373870592 94000373890473 "
	"140730025455984 0 0 0 0 4096 16387 0 0 0 17 1 0 0 0 0 0 94000373906480 "
	"94000373908096 94000850804736 140730025458107 140730025458127 140730025458127 "
	"140730025459691 0\n";

static void
stat_fields(void **state)
{
	struct procstat_stat s;

	(void)state;
	assert_int_equal(procstat_parse_stat(STAT, &s), 0);
	assert_int_equal(s.utime, 1234);
	assert_int_equal(s.stime, 567);
	assert_int_equal(s.starttime, 2609571);
	assert_int_equal(s.vsize, 3133440);
	assert_int_equal(s.rss, 359);
}

/* The command is up to 16 bytes of anything, spaces and ')' too: the
 * fields start after the last ')'. Negative priority and nice (a
 * real-time thread, nice -5) are skipped. */
static void
stat_odd_command(void **state)
{
	struct procstat_stat s;

	(void)state;
	assert_int_equal(procstat_parse_stat("7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 -2 -5 "
					     "1 0 300 4096 2 0\n",
					     &s),
			 0);
	assert_int_equal(s.utime, 10);
	assert_int_equal(s.stime, 20);
	assert_int_equal(s.starttime, 300);
	assert_int_equal(s.vsize, 4096);
	assert_int_equal(s.rss, 2);
}

static void
stat_refused(void **state)
{
	struct procstat_stat s;
	char cut[120];

	(void)state;
	assert_int_equal(procstat_parse_stat("", &s), -EINVAL);
	assert_int_equal(procstat_parse_stat("21841 cordond S 1", &s), -EINVAL);
	/* cut before rss */
	snprintf(cut, sizeof(cut), "%.*s", (int)(strstr(STAT, " 359 ") - STAT), STAT);
	assert_int_equal(procstat_parse_stat(cut, &s), -EINVAL);
	/* a letter where utime is */
	assert_int_equal(procstat_parse_stat("1 (x) R 1 1 1 0 -1 0 0 0 0 0 1x 2 0 0 20 0 1 0 "
					     "3 4 5 0\n",
					     &s),
			 -EINVAL);
}

static void
btime_line(void **state)
{
	static const char text[] = "cpu  2255 34 2290 22625563 6290 127 456 0 0 0\n"
				   "cpu0 1132 34 1441 11311718 3675 127 438 0 0 0\n"
				   "intr 114930548 113199788 3 0 5 263 0 4 [...] 0 0\n"
				   "ctxt 1990473\n"
				   "btime 1796122166\n"
				   "processes 2915\n";
	int64_t b = 0;

	(void)state;
	assert_int_equal(procstat_parse_btime(text, &b), 0);
	assert_true(b == 1796122166);
	assert_int_equal(procstat_parse_btime("btime 12\n", &b), 0);
	assert_true(b == 12);
	assert_int_equal(procstat_parse_btime("ctxt 1\nprocesses 2\n", &b), -EINVAL);
	assert_int_equal(procstat_parse_btime("xbtime 5\n", &b), -EINVAL);
	assert_int_equal(procstat_parse_btime("btime -5\n", &b), -EINVAL);
}

/* The figures as procfs computes them (proc_stat.go): CPU and start time
 * in ticks of USER_HZ, rss in pages. */
static void
computed(void **state)
{
	struct procstat_stat s;
	struct procstat p;

	(void)state;
	assert_int_equal(procstat_parse_stat(STAT, &s), 0);
	procstat_compute(&s, 1796122166, 100, 4096, &p);
	assert_true(p.cpu_seconds > 18.009 && p.cpu_seconds < 18.011);
	assert_int_equal(p.virtual_bytes, 3133440);
	assert_int_equal(p.resident_bytes, 359 * 4096);
	assert_true(p.start_time > 1796122166 + 26095.70 && p.start_time < 1796122166 + 26095.72);
}

/* What procstat_print() writes for this process: the six metrics, each
 * with HELP and TYPE. */
static void
printed(void **state)
{
	static const char *const names[] = {
		"process_cpu_seconds_total",
		"process_virtual_memory_bytes",
		"process_resident_memory_bytes",
		"process_start_time_seconds",
		"process_open_fds",
		"process_max_fds",
	};
	char *text = NULL, line[128];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	procstat_print(f);
	fclose(f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "# HELP %s ", names[i]);
		assert_non_null(strstr(text, line));
		snprintf(line, sizeof(line), "# TYPE %s ", names[i]);
		assert_non_null(strstr(text, line));
		snprintf(line, sizeof(line), "\n%s ", names[i]);
		assert_non_null(strstr(text, line));
	}
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stat_fields),	cmocka_unit_test(stat_odd_command),
		cmocka_unit_test(stat_refused), cmocka_unit_test(btime_line),
		cmocka_unit_test(computed),	cmocka_unit_test(printed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
