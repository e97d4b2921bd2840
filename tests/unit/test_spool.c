/* Unit tests of the spool: append and read back, rotation, release,
 * checkpoint, recovery from a torn tail, the size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

static char dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/spooltest.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct spool *
open_spool(int64_t segment_bytes, int64_t max_bytes)
{
	struct spool_options o = {
		.dir = dir, .max_bytes = max_bytes, .segment_bytes = segment_bytes,
		.max_payload = 65536, .sync = SPOOL_SYNC_OFF,
	};
	struct spool *s = NULL;

	assert_int_equal(spool_open(&o, &s), 0);
	return s;
}

static void
append_n(struct spool *s, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		char topic[64], payload[128];

		snprintf(topic, sizeof(topic), "cordon/s1/gate/G%02d/event", i % 16);
		snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
		assert_int_equal(spool_append(s, topic, strlen(topic), payload, strlen(payload), i), 0);
	}
}

/* Reads from `pos` to the end, checking the sequence; returns the count. */
static int
read_all(struct spool *s, uint64_t pos, int first)
{
	struct spool_reader *r;
	struct spool_record rec;
	int n = 0, rc;

	assert_int_equal(spool_reader_create(s, pos, &r), 0);
	while ((rc = spool_reader_next(r, &rec)) == 1) {
		char want[128];

		snprintf(want, sizeof(want), "{\"seq\":%d}", first + n);
		assert_int_equal(rec.payload_len, strlen(want));
		assert_memory_equal(rec.payload, want, rec.payload_len);
		assert_int_equal(rec.recv_us, first + n);
		n++;
	}
	assert_int_equal(rc, 0);
	spool_reader_destroy(r);
	return n;
}

static int
count_segments(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while ((de = readdir(d)) != NULL)
		n += strstr(de->d_name, ".seg") != NULL;
	closedir(d);
	return n;
}

static void
append_read_rotate_release(void **state)
{
	struct spool *s = open_spool(4096, 1 << 30);
	uint64_t mid;

	(void)state;
	append_n(s, 0, 500);
	assert_int_equal(read_all(s, 0, 0), 500);
	assert_true(count_segments() > 5);

	/* Reopen: everything is still there, and appends continue. */
	mid = spool_end(s);
	spool_close(s);
	s = open_spool(4096, 1 << 30);
	assert_true(spool_end(s) == mid);
	append_n(s, 500, 10);
	assert_int_equal(read_all(s, 0, 0), 510);

	/* Releasing deletes only whole segments before the position. */
	spool_release(s, mid);
	assert_true(spool_first(s) <= mid);
	assert_true(spool_first(s) > 0);
	assert_int_equal(read_all(s, mid, 500), 10);
	spool_close(s);
}

/* Path of the newest segment file. */
static void
last_segment(char *path, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char best[256] = "";

	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".seg") && strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	snprintf(path, len, "%s/%s", dir, best);
}

static void
torn_tail_is_cut(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	char path[512];
	struct stat st;
	uint64_t end;
	int fd;

	(void)state;
	append_n(s, 0, 100);
	end = spool_end(s);
	spool_close(s);

	last_segment(path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size == end);
	assert_int_equal(truncate(path, st.st_size - 5), 0);

	s = open_spool(1 << 20, 1 << 30);
	assert_int_equal(read_all(s, 0, 0), 99);
	/* Positions are not reused: the next record starts in a new segment
	 * beyond anything the cut one can ever have held (a checkpoint may
	 * name a position past what the torn file still shows). */
	assert_true(spool_end(s) > end + (1u << 30));
	{
		/* The size counts bytes, not the gap between positions. */
		struct spool_stats st1;

		spool_get_stats(s, &st1);
		assert_true(st1.torn_bytes > 0);
		assert_true(spool_bytes(s) == end - 5 - st1.torn_bytes);
	}
	append_n(s, 99, 1);
	assert_true(spool_end(s) > end);
	assert_int_equal(read_all(s, 0, 0), 100);
	assert_int_equal(count_segments(), 2);
	spool_close(s);

	/* Garbage after the last record of the newest segment is cut too. */
	last_segment(path, sizeof(path));
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage!garbage!garbage!garbage!garbage!", 40), 40);
	close(fd);
	s = open_spool(1 << 20, 1 << 30);
	assert_int_equal(read_all(s, 0, 0), 100);
	{
		struct spool_stats st2;

		spool_get_stats(s, &st2);
		assert_int_equal(st2.torn_bytes, 40);
		assert_int_equal(st2.corrupt, 0);
	}
	spool_close(s);
}

static void
corrupt_record_in_old_segment_is_skipped(void **state)
{
	struct spool *s = open_spool(2048, 1 << 30);
	char path[512];
	int fd, n;

	(void)state;
	append_n(s, 0, 200);
	snprintf(path, sizeof(path), "%s/%020d.seg", dir, 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXX", 4, 40), 4);	/* inside the first record */
	close(fd);
	/* The reader skips the rest of that segment and goes on. */
	{
		struct spool_reader *r;
		struct spool_record rec;
		int rc;

		assert_int_equal(spool_reader_create(s, 0, &r), 0);
		n = 0;
		while ((rc = spool_reader_next(r, &rec)) == 1)
			n++;
		assert_int_equal(rc, 0);
		spool_reader_destroy(r);
	}
	assert_true(n > 150 && n < 200);
	spool_close(s);
}

static void
limit_and_truncation(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 20);
	static char big[200000];
	struct spool_reader *r;
	struct spool_record rec;
	int err = 0, n = 0;

	(void)state;
	memset(big, 'x', sizeof(big));
	/* Payloads are cut at max_payload and marked. */
	assert_int_equal(spool_append(s, "t", 1, big, sizeof(big), 1), 0);
	assert_int_equal(spool_reader_create(s, 0, &r), 0);
	assert_int_equal(spool_reader_next(r, &rec), 1);
	assert_int_equal(rec.payload_len, 65536);
	assert_int_equal(rec.orig_len, sizeof(big));
	assert_int_equal(rec.flags, SPOOL_TRUNCATED);
	spool_reader_destroy(r);
	/* The spool refuses appends past max_bytes. */
	while (n++ < 100 && (err = spool_append(s, "t", 1, big, 60000, 1)) == 0)
		;
	assert_int_equal(err, -ENOSPC);
	assert_true(spool_end(s) <= (1 << 20));
	spool_close(s);
}

/* A reader that sits at the end of a segment when that segment is
 * released (everything in it committed) goes on in the next one. */
static void
reader_survives_release_of_its_segment(void **state)
{
	struct spool *s = open_spool(4096, 1 << 30);
	struct spool_reader *r;
	struct spool_record rec;
	int i, released = 0;

	(void)state;
	assert_int_equal(spool_reader_create(s, 0, &r), 0);
	for (i = 0; i < 200 && !released; i++) {
		uint64_t before = spool_end(s);

		append_n(s, i, 1);
		if (count_segments() == 2) {
			/* This append started a new segment: release the old
			 * one while the reader still holds it, at its end. */
			spool_release(s, before);
			assert_int_equal(count_segments(), 1);
			released = 1;
		}
		assert_int_equal(spool_reader_next(r, &rec), 1);
		assert_int_equal(rec.recv_us, i);
	}
	assert_true(released);
	append_n(s, i, 1);
	assert_int_equal(spool_reader_next(r, &rec), 1);
	assert_int_equal(rec.recv_us, i);
	assert_int_equal(spool_reader_next(r, &rec), 0);
	spool_reader_destroy(r);
	spool_close(s);
}

static void
checkpoint_round_trip(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	char id[64];

	(void)state;
	assert_true(spool_load_checkpoint(s) == 0);
	assert_int_equal(spool_save_checkpoint(s, 12345), 0);
	assert_true(spool_load_checkpoint(s) == 12345);
	snprintf(id, sizeof(id), "%s", spool_id(s));
	assert_int_equal(strlen(id), 32);
	spool_close(s);
	s = open_spool(1 << 20, 1 << 30);
	assert_string_equal(spool_id(s), id);
	assert_true(spool_load_checkpoint(s) == 12345);
	spool_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_read_rotate_release, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_record_in_old_segment_is_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(limit_and_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_survives_release_of_its_segment, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
