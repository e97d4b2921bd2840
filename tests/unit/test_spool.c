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
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "spool.h"

static char dir[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/spooltest.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "%s/tmpfs", dir);
	umount2(cmd, MNT_DETACH); /* left by a failed reclaim_on_full_tmpfs */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct spool *
open_spool(int64_t segment_bytes, int64_t max_bytes)
{
	struct spool_options o = {
		.dir = dir,
		.max_bytes = max_bytes,
		.segment_bytes = segment_bytes,
		.max_payload = 65536,
		.sync = SPOOL_SYNC_OFF,
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
		assert_int_equal(spool_append_flags(s, topic, strlen(topic), payload,
						    strlen(payload), i, 0),
				 0);
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
	{
		/* Nothing after the checkpoint (the old end) is there: the gap
		 * counts no bytes, and a reader steps over it at once. */
		struct spool_reader *r;
		struct spool_record rec;

		assert_true(spool_pending(s, end) == 0);
		assert_int_equal(spool_reader_create(s, end, &r), 0);
		assert_int_equal(spool_reader_next(r, &rec), 0);
		assert_true(spool_reader_pos(r) == spool_end(s));
		spool_reader_destroy(r);
	}
	{
		uint64_t before = spool_end(s);

		append_n(s, 99, 1);
		assert_true(spool_pending(s, end) == spool_end(s) - before);
	}
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
		assert_int_equal(st2.damaged_spans, 0);
	}
	spool_close(s);
}

/* Reads from `pos` to the end: records must carry the sequence numbers
 * from `first` on, except the ones in `lost` (n_lost of them, ascending),
 * which must come as damaged spans, one each. Returns the records read;
 * *ret_spans (if not NULL) gets the spans. */
static int
read_expect(struct spool *s, uint64_t pos, int first, const int *lost, int n_lost, int *ret_spans)
{
	struct spool_reader *r;
	struct spool_record rec;
	int n = 0, seq = first, spans = 0, rc;

	assert_int_equal(spool_reader_create(s, pos, &r), 0);
	while ((rc = spool_reader_next(r, &rec)) == 1) {
		char want[128];

		if (rec.flags & SPOOL_DAMAGED) {
			assert_true(spans < n_lost);
			assert_int_equal(seq, lost[spans]);
			assert_true(rec.next > rec.pos);
			assert_int_equal(rec.orig_len, rec.next - rec.pos);
			assert_true(rec.payload_len <= rec.orig_len);
			assert_int_equal(rec.topic_len, 0);
			spans++;
			seq++;
			continue;
		}
		snprintf(want, sizeof(want), "{\"seq\":%d}", seq);
		assert_int_equal(rec.payload_len, strlen(want));
		assert_memory_equal(rec.payload, want, rec.payload_len);
		assert_int_equal(rec.recv_us, seq);
		seq++;
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(spans, n_lost);
	spool_reader_destroy(r);
	if (ret_spans)
		*ret_spans = spans;
	return n;
}

/* Position and size of record `seq` (appended by append_n from 0). */
static void
record_at(struct spool *s, int seq, uint64_t *ret_pos, uint64_t *ret_size)
{
	struct spool_reader *r;
	struct spool_record rec;

	assert_int_equal(spool_reader_create(s, 0, &r), 0);
	for (;;) {
		assert_int_equal(spool_reader_next(r, &rec), 1);
		if (rec.recv_us == seq)
			break;
	}
	*ret_pos = rec.pos;
	*ret_size = rec.next - rec.pos;
	spool_reader_destroy(r);
}

/* Flips the byte at spool position `pos` in its segment file. */
static void
flip_byte(uint64_t seg_start, uint64_t pos)
{
	char path[512];
	unsigned char c;
	int fd;

	snprintf(path, sizeof(path), "%s/%020llu.seg", dir, (unsigned long long)seg_start);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)(pos - seg_start)), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)(pos - seg_start)), 1);
	close(fd);
}

/* Damage in a closed segment while running: the reader skips only the
 * damaged record, as one span, and counts it once (two readers). */
static void
damage_in_closed_segment_loses_one_record(void **state)
{
	struct spool *s = open_spool(2048, 1 << 30);
	struct spool_stats st;
	uint64_t pos, size;
	int lost[] = { 7 };

	(void)state;
	append_n(s, 0, 200);
	record_at(s, 7, &pos, &size);
	assert_true(pos + size < 2048); /* in the first segment */
	flip_byte(0, pos + size / 2);
	assert_int_equal(read_expect(s, 0, 0, lost, 1, NULL), 199);
	assert_int_equal(read_expect(s, 0, 0, lost, 1, NULL), 199);
	spool_get_stats(s, &st);
	assert_int_equal(st.damaged_spans, 1);
	assert_int_equal(st.damaged_bytes, size);

	/* Damage in a header too: a flipped magic, a length that lies. */
	record_at(s, 20, &pos, &size);
	flip_byte(0, pos);
	{
		uint64_t p2, s2;

		record_at(s, 30, &p2, &s2);
		assert_true(p2 + s2 < 2048);
		flip_byte(0, p2 + 4); /* payload length */
	}
	{
		int lost3[] = { 7, 20, 30 };

		assert_int_equal(read_expect(s, 0, 0, lost3, 3, NULL), 197);
	}
	spool_close(s);
}

/* Damage in the middle of the last segment: kept at open (whole records
 * follow), skipped by readers; the file is not cut, no gap. */
static void
damage_in_last_segment_is_kept_at_open(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	struct spool_stats st;
	uint64_t pos, size, end;
	int lost[] = { 5000 };

	(void)state;
	append_n(s, 0, 10000);
	end = spool_end(s);
	record_at(s, 5000, &pos, &size);
	spool_close(s);
	assert_int_equal(count_segments(), 1);
	flip_byte(0, pos + size / 2);

	s = open_spool(1 << 20, 1 << 30);
	assert_true(spool_end(s) == end);
	spool_get_stats(s, &st);
	assert_int_equal(st.torn_bytes, 0);
	assert_int_equal(read_expect(s, 0, 0, lost, 1, NULL), 9999);
	spool_get_stats(s, &st);
	assert_int_equal(st.damaged_spans, 1);
	assert_int_equal(st.damaged_bytes, size);
	/* Appends go on in the same segment, after the damage. */
	append_n(s, 10000, 1);
	assert_int_equal(count_segments(), 1);
	spool_close(s);
	s = open_spool(1 << 20, 1 << 30);
	assert_int_equal(read_expect(s, 0, 0, lost, 1, NULL), 10000);
	spool_close(s);
}

/* The last record whole but damaged: damage, not a torn tail. A torn
 * tail after damage in the middle: the middle is kept, the tail cut. */
static void
damaged_last_record_and_torn_tail(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	struct spool_stats st;
	uint64_t pos, size, mpos, msize, end;
	char path[512];
	int lost[] = { 99 }, lost2[] = { 50 };

	(void)state;
	append_n(s, 0, 100);
	end = spool_end(s);
	record_at(s, 99, &pos, &size);
	record_at(s, 50, &mpos, &msize);
	spool_close(s);
	flip_byte(0, pos + size - 3);
	s = open_spool(1 << 20, 1 << 30);
	spool_get_stats(s, &st);
	assert_int_equal(st.torn_bytes, 0);
	assert_true(spool_end(s) == end);
	assert_int_equal(read_expect(s, 0, 0, lost, 1, NULL), 99);
	spool_close(s);

	/* Mend it, damage record 50, tear the last one. */
	flip_byte(0, pos + size - 3);
	flip_byte(0, mpos + msize / 2);
	snprintf(path, sizeof(path), "%s/%020d.seg", dir, 0);
	assert_int_equal(truncate(path, (off_t)(end - 5)), 0);
	s = open_spool(1 << 20, 1 << 30);
	spool_get_stats(s, &st);
	assert_int_equal(st.torn_bytes, size - 5);
	assert_int_equal(read_expect(s, 0, 0, lost2, 1, NULL), 98);
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
	assert_int_equal(spool_append_flags(s, "t", 1, big, sizeof(big), 1, 0), 0);
	assert_int_equal(spool_reader_create(s, 0, &r), 0);
	assert_int_equal(spool_reader_next(r, &rec), 1);
	assert_int_equal(rec.payload_len, 65536);
	assert_int_equal(rec.orig_len, sizeof(big));
	assert_int_equal(rec.flags, SPOOL_TRUNCATED);
	spool_reader_destroy(r);
	/* The source shard (0 to 255) and the retained flag come back as
	 * written; other bits are not stored. */
	for (int shard = -1; shard < 256; shard += 37) {
		unsigned want = (shard >= 0 ? SPOOL_SOURCE(shard) : 0) | SPOOL_RETAINED;
		uint64_t at = spool_end(s);

		assert_int_equal(spool_append_flags(s, "t", 1, "x", 1, 1, want | SPOOL_DAMAGED), 0);
		assert_int_equal(spool_reader_create(s, at, &r), 0);
		assert_int_equal(spool_reader_next(r, &rec), 1);
		assert_int_equal(rec.flags, want);
		assert_int_equal(SPOOL_SOURCE_SHARD(rec.flags), shard);
		spool_reader_destroy(r);
	}
	assert_int_equal(SPOOL_SOURCE_SHARD(SPOOL_SOURCE(255)), 255);
	/* The spool refuses appends past max_bytes. */
	while (n++ < 100 && (err = spool_append_flags(s, "t", 1, big, 60000, 1, 0)) == 0)
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

/* Appends until an append fails; returns the number appended and the
 * error in *ret_err. */
static int
append_until_error(struct spool *s, int from, int *ret_err)
{
	static char pad[1000];
	int i, err = 0;

	memset(pad, 'p', sizeof(pad) - 1);
	for (i = from; i < from + 100000; i++) {
		char topic[64], payload[1200];

		snprintf(topic, sizeof(topic), "cordon/s1/gate/G%02d/event", i % 16);
		snprintf(payload, sizeof(payload), "{\"seq\":%d,\"pad\":\"%s\"}", i, pad);
		err = spool_append_flags(s, topic, strlen(topic), payload, strlen(payload), i, 0);
		if (err)
			break;
	}
	*ret_err = err;
	return i - from;
}

/* Reads everything from `pos`; returns the number of records. */
static int
count_records(struct spool *s, uint64_t pos)
{
	struct spool_reader *r;
	struct spool_record rec;
	int n = 0, rc;

	assert_int_equal(spool_reader_create(s, pos, &r), 0);
	while ((rc = spool_reader_next(r, &rec)) == 1) {
		assert_false(rec.flags & SPOOL_DAMAGED);
		n++;
	}
	assert_int_equal(rc, 0);
	spool_reader_destroy(r);
	return n;
}

/* A file size limit smaller than one segment (as a disk smaller than one
 * segment): once everything is committed, release() deletes the segment
 * being written, and appends work again. */
static void
reclaim_when_appends_fail(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	struct rlimit old, lim;
	uint64_t end;
	int n, err;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 64 << 10;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	n = append_until_error(s, 0, &err);
	assert_int_equal(err, -EFBIG);
	assert_true(n > 10);
	assert_int_equal(spool_write_error(s), -EFBIG);
	end = spool_end(s);
	assert_true(end <= (64 << 10));
	assert_int_equal(count_records(s, 0), n);

	/* Not all committed: nothing to do. */
	spool_release(s, end - 1);
	assert_true(spool_first(s) == 0);
	assert_int_equal(append_until_error(s, n, &err), 0);
	assert_int_equal(err, -EFBIG);

	/* All committed: a new segment, the old one deleted. */
	spool_release(s, end);
	assert_true(spool_first(s) == end);
	assert_int_equal(count_segments(), 1);
	assert_true(spool_bytes(s) == 0);
	assert_true(spool_pending(s, 0) == 0);
	assert_int_equal(spool_write_error(s), -EFBIG); /* until an append succeeds */
	assert_int_equal(append_until_error(s, n, &err), n);
	assert_int_equal(err, -EFBIG);
	assert_int_equal(spool_write_error(s), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	append_n(s, 0, 1);
	assert_int_equal(spool_write_error(s), 0);
	signal(SIGXFSZ, SIG_DFL);
	spool_close(s);
}

/* The same on a real, full file system: a 256 KiB tmpfs under a spool
 * whose segments may grow to 1 MiB. Needs root (CI runs the tests as
 * root); skipped otherwise. */
static void
reclaim_on_full_tmpfs(void **state)
{
	struct spool_options o = {
		.max_bytes = 1 << 30,
		.segment_bytes = 1 << 20,
		.max_payload = 65536,
		.sync = SPOOL_SYNC_INTERVAL,
	};
	char mnt[512];
	struct statvfs vfs;
	struct spool *s;
	struct spool_reader *r;
	struct spool_record rec;
	uint64_t base, end, freed;
	int n, err;

	(void)state;
	snprintf(mnt, sizeof(mnt), "%s/tmpfs", dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (geteuid() != 0 || mount("cordon-test", mnt, "tmpfs", 0, "size=256k") < 0) {
		fprintf(stderr, "cannot mount a tmpfs (%s): skipped\n",
			geteuid() ? "not root" : strerror(errno));
		skip();
	}
	o.dir = mnt;
	assert_int_equal(spool_open(&o, &s), 0);
	/* A sixteenth of the disk (16 KiB), all committed: replaced while
	 * appends still work (a pause for the disk never lets them fail). */
	append_n(s, 0, 100); /* about 4.5 KiB */
	spool_release(s, spool_end(s));
	assert_true(spool_first(s) == 0);
	append_n(s, 100, 300);
	base = spool_end(s);
	spool_release(s, base);
	assert_true(spool_first(s) == base);
	assert_int_equal(spool_write_error(s), 0);

	/* Filled to the last byte: appends fail; all committed, the
	 * segment goes and appends work again. */
	n = append_until_error(s, 0, &err);
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(spool_write_error(s), -ENOSPC);
	assert_true(n > 100);
	end = spool_end(s);
	/* A reader parked at the end (as the store's cursor is) must not
	 * keep the deleted file's blocks. */
	assert_int_equal(spool_reader_create(s, base, &r), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(spool_reader_next(r, &rec), 1);
	assert_int_equal(spool_reader_next(r, &rec), 0);
	assert_int_equal(statvfs(mnt, &vfs), 0);
	assert_true(vfs.f_bavail * vfs.f_frsize < 8192);

	spool_release(s, end - 1);
	assert_true(spool_first(s) == base);
	spool_release(s, end);
	assert_true(spool_first(s) == end);
	assert_int_equal(statvfs(mnt, &vfs), 0);
	freed = vfs.f_bavail * vfs.f_frsize;
	assert_true(freed >= end - base - 8192);
	assert_int_equal(append_until_error(s, n, &err), n);
	assert_int_equal(err, -ENOSPC);
	for (int i = 0; i < n; i++) {
		assert_int_equal(spool_reader_next(r, &rec), 1);
		assert_int_equal(rec.recv_us, n + i);
	}
	assert_int_equal(spool_reader_next(r, &rec), 0);
	spool_reader_destroy(r);
	spool_close(s);
	assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

/* With appends working, the segment being written is replaced once it is
 * all committed and a quarter of segment_bytes. */
static void
reclaim_large_committed_segment(void **state)
{
	struct spool *s = open_spool(64 << 10, 1 << 30);
	uint64_t end;

	(void)state;
	append_n(s, 0, 100); /* about 4.5 KiB */
	end = spool_end(s);
	spool_release(s, end);
	assert_true(spool_first(s) == 0); /* small: kept */
	append_n(s, 100, 300);		  /* over 16 KiB */
	end = spool_end(s);
	spool_release(s, end - 1);
	assert_true(spool_first(s) == 0); /* not all committed */
	spool_release(s, end);
	assert_true(spool_first(s) == end);
	assert_int_equal(count_segments(), 1);
	append_n(s, 400, 1);
	assert_int_equal(read_all(s, end, 400), 1);
	spool_close(s);
}

static void
rm_rf(const char *path)
{
	char cmd[1100];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

/* rm -rf of the spool directory while it is open: appends fail, what was
 * appended still reads (through the descriptors), and once it is all
 * committed the directory is made again with the same id. */
static void
directory_deleted_while_open(void **state)
{
	struct spool *s = open_spool(2048, 1 << 30);
	char id[64], path[600], buf[64];
	uint64_t end, bytes;
	FILE *f;

	(void)state;
	snprintf(id, sizeof(id), "%s", spool_id(s));
	append_n(s, 0, 50);
	end = spool_end(s);
	bytes = spool_bytes(s);
	assert_true(count_segments() > 1);
	assert_int_equal(spool_check_dir(s), SPOOL_DIR_OK);
	rm_rf(dir);
	assert_int_equal(spool_check_dir(s), SPOOL_DIR_DELETED);
	assert_int_equal(spool_append_flags(s, "t", 1, "x", 1, 1, 0), -ENOENT);
	assert_true(spool_end(s) == end);
	assert_true(spool_pending(s, 0) == bytes);
	assert_true(spool_pending_deleted(s, 0) == bytes);
	assert_int_equal(read_all(s, 0, 0), 50);
	assert_int_equal(spool_save_checkpoint(s, end), -ENOENT);
	assert_int_equal(spool_recreate(s, end - 1), -EBUSY);
	spool_release(s, end); /* frees the old files */
	assert_int_equal(spool_recreate(s, end), 0);
	assert_int_equal(spool_check_dir(s), SPOOL_DIR_OK);
	assert_true(spool_first(s) == end && spool_end(s) == end);
	assert_int_equal(count_segments(), 1);
	snprintf(path, sizeof(path), "%s/spool.id", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_memory_equal(buf, id, 32);
	assert_true(spool_load_checkpoint(s) == end);
	append_n(s, 50, 10);
	assert_int_equal(read_all(s, end, 50), 10);
	spool_close(s);

	s = open_spool(2048, 1 << 30);
	assert_string_equal(spool_id(s), id);
	assert_true(spool_first(s) == end);
	assert_int_equal(read_all(s, end, 50), 10);
	spool_close(s);
}

/* The segment being written deleted: the next append (a millisecond on)
 * fails, is not acknowledged and leaves nothing behind. */
static void
append_fails_once_segment_deleted(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	char path[512];
	uint64_t end;

	(void)state;
	append_n(s, 0, 10);
	end = spool_end(s);
	last_segment(path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	usleep(2000); /* an append looks at most once a millisecond */
	assert_int_equal(spool_append_flags(s, "t", 1, "x", 1, 1, 0), -ENOENT);
	assert_true(spool_end(s) == end);
	assert_int_equal(spool_check_dir(s), SPOOL_DIR_DELETED);
	assert_int_equal(spool_append_flags(s, "t", 1, "x", 1, 1, 0), -ENOENT);
	assert_int_equal(read_all(s, 0, 0), 10);
	assert_int_equal(spool_recreate(s, end), 0);
	append_n(s, 10, 1);
	assert_int_equal(read_all(s, end, 10), 1);
	spool_close(s);
}

/* Another directory at the path (a remount): nothing is written into it
 * while it holds a spool of its own; the old files are deleted through
 * the old directory once committed. */
static void
directory_replaced(void **state)
{
	struct spool *s = open_spool(2048, 1 << 30);
	char old[600], path[600];
	uint64_t end;
	FILE *f;
	DIR *d;
	struct dirent *de;
	int segs = 0;

	(void)state;
	append_n(s, 0, 50);
	end = spool_end(s);
	snprintf(old, sizeof(old), "%s.old", dir);
	assert_int_equal(rename(dir, old), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/spool.id", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	assert_int_equal(spool_check_dir(s), SPOOL_DIR_REPLACED);
	assert_int_equal(spool_append_flags(s, "t", 1, "x", 1, 1, 0), -ESTALE);
	assert_int_equal(read_all(s, 0, 0), 50);
	assert_int_equal(spool_recreate(s, end), -EEXIST);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(spool_recreate(s, end), 0);
	d = opendir(old);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		segs += strstr(de->d_name, ".seg") != NULL;
	closedir(d);
	assert_int_equal(segs, 0);
	append_n(s, 50, 1);
	assert_int_equal(read_all(s, end, 50), 1);
	spool_close(s);
	rm_rf(old);
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

/* A power loss takes the unsynced tail of the last segment cleanly (the
 * file ends on a record boundary: no torn bytes), while the local
 * checkpoint - committed to PostgreSQL before the loss - names a position
 * in the lost part. New records must start beyond it: were positions
 * reused, they would land below the checkpoint, and after a second stop
 * before any commit the replay (setup(): start = checkpoint clamped to
 * [first, end]) would start at the old checkpoint and skip them. */
static void
checkpoint_beyond_a_clean_end_reuses_no_position(void **state)
{
	struct spool *s = open_spool(1 << 20, 1 << 30);
	char path[512];
	uint64_t synced, ck, start;
	int n;

	(void)state;
	append_n(s, 0, 10);
	synced = spool_end(s); /* what reached the disk */
	append_n(s, 10, 10);   /* acknowledged, committed, not yet synced */
	ck = spool_end(s);
	assert_int_equal(spool_save_checkpoint(s, ck), 0);
	spool_close(s);
	last_segment(path, sizeof(path));
	assert_int_equal(truncate(path, (off_t)synced), 0); /* the power loss */

	/* First start after the loss: replay from min(checkpoint, end). */
	s = open_spool(1 << 20, 1 << 30);
	assert_true(spool_end(s) > ck); /* beyond the checkpoint: a gap */
	/* The broker delivers 10 new messages (seq 100..109); they are
	 * acknowledged; cordond stops before PostgreSQL commits them. */
	for (int i = 100; i < 110; i++) {
		char topic[] = "cordon/s1/gate/G01/event", payload[64];

		snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
		assert_int_equal(spool_append_flags(s, topic, strlen(topic), payload,
						    strlen(payload), i, 0),
				 0);
	}
	spool_close(s);

	/* Second start: setup()'s choice of the replay position. */
	s = open_spool(1 << 20, 1 << 30);
	start = spool_load_checkpoint(s);
	if (start < spool_first(s))
		start = spool_first(s);
	if (start > spool_end(s))
		start = spool_end(s);
	{
		struct spool_reader *r;
		struct spool_record rec;

		assert_int_equal(spool_reader_create(s, start, &r), 0);
		n = 0;
		while (spool_reader_next(r, &rec) == 1)
			n++;
		spool_reader_destroy(r);
	}
	assert_int_equal(n, 10); /* every acknowledged record replayed */
	spool_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_read_rotate_release, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(damage_in_closed_segment_loses_one_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(damage_in_last_segment_is_kept_at_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(damaged_last_record_and_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(limit_and_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(reclaim_when_appends_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(reclaim_on_full_tmpfs, setup, teardown),
		cmocka_unit_test_setup_teardown(reclaim_large_committed_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(directory_deleted_while_open, setup, teardown),
		cmocka_unit_test_setup_teardown(append_fails_once_segment_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(directory_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(checkpoint_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_survives_release_of_its_segment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(checkpoint_beyond_a_clean_end_reuses_no_position,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
