/* fuzz_spool.c - libFuzzer target for spool recovery and reading.
 *
 * Each input is tried in three layouts in one dir, made once per process:
 * cordon-fuzz-spool.<pid> in $TMPDIR, else in /dev/shm. Every file in it
 * but spool.id is deleted before each layout (keeping spool.id spares each
 * run a getrandom and an fsync):
 *
 *   A. the input is the last (only) segment 00000000000000000000.seg:
 *      spool_open() must cut it to its longest valid prefix (and start a
 *      new segment beyond the cut bytes: positions are never reused);
 *   B. the input is a closed, earlier segment 00000000000000000000.seg,
 *      followed by an empty last segment named after the input's size:
 *      recovery does not look at it, so the reader must skip whatever is
 *      corrupt or torn in it on its own;
 *   C. the input is written over a whole record in the segment being
 *      written (see run_c());
 *   D. the property of resynchronisation (see run_d()): records made from
 *      the input's first bytes, in a closed and a last segment, damaged on
 *      disk as the rest of the input says; every record the damage did not
 *      touch must be read back, unchanged and in order.
 *
 * A and B, then: read everything with a spool_reader until 0, append one record,
 * read again (exactly that record, then 0), close, reopen and check that
 * recovery keeps every byte and reads the same. abort() on a broken
 * invariant; ASan/LSan/UBSan do the rest.
 *
 * A custom mutator re-seals every other mutant: each record that still
 * frames (magic, lengths that fit) gets a correct checksum again, so that
 * odd but valid records reach the reader too; the fuzzer could not forge
 * XXH3 checksums by itself. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "log.h"
#include "spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

#define MAGIC 0x31525343u /* "CSR1", as in spool.c */

/* Was a known spool.c issue (tests/fuzz/crashes/README.md, fixed): a
 * corrupt header claiming more bytes than there are up to the end made
 * the reader wait instead of resyncing. Kept as a switch (0: checked). */
#ifndef KNOWN_LONG_HEADER_STALL
#define KNOWN_LONG_HEADER_STALL 0
#endif

#define SEGMENT_BYTES 4096
#define MAX_READS 100000 /* a reader that loops for ever is a bug */

static char dir[4096];
static int cur_layout = '-';   /* for messages */
static volatile uint64_t sink; /* keeps the reads of every record byte */

static const char topic[] = "cordon/s1/gate/G03/event";
static const char payload[] = "{\"id\":\"G03-000123\",\"ts\":\"2020-02-16T18:32:00.123+08:00\","
			      "\"card\":\"C-0412\",\"person\":\"P-10233\",\"direction\":\"in\","
			      "\"temp_c\":36.6,\"mask\":true}";
#define RECV_US 1581849120000000LL
#define RECORD_SIZE (SPOOL_HEADER_SIZE + sizeof(topic) - 1 + sizeof(payload) - 1)
#define RECORD_MIN (SPOOL_HEADER_SIZE + sizeof(topic) - 1) /* empty payload */
#define MAX_PAYLOAD 65536

#define CHECK(cond)                                                                           \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "%s:%d: layout %c: invariant failed: %s\n", __FILE__, \
				__LINE__, cur_layout, #cond);                                 \
			abort();                                                              \
		}                                                                             \
	} while (0)

#define DIR_PREFIX "cordon-fuzz-spool."

/* Deletes the files in `path` (a flat dir), but spool.id when keep_id. */
static void
empty_dir(const char *path, int keep_id)
{
	DIR *d = opendir(path);
	struct dirent *de;

	CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		char file[8192];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (keep_id && strcmp(de->d_name, "spool.id") == 0))
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		CHECK(unlink(file) == 0);
	}
	closedir(d);
}

static void
remove_dir(void)
{
	empty_dir(dir, 0);
	rmdir(dir);
}

/* A crash ends the process with _Exit(), so its dir stays: remove the
 * dirs of fuzz_spool processes that are gone. */
static void
remove_stale_dirs(const char *tmp)
{
	DIR *d = opendir(tmp);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[8192], *end;
		long pid;

		if (strncmp(de->d_name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0)
			continue;
		errno = 0;
		pid = strtol(de->d_name + strlen(DIR_PREFIX), &end, 10);
		if (errno || *end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
		empty_dir(path, 0);
		rmdir(path);
	}
	closedir(d);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;

	(void)argc;
	(void)argv;
	/* The spool logs every torn tail and skipped record; keep stderr for
	 * libFuzzer (below LOG_LEVEL_ERR nothing is printed). */
	log_set_level((enum log_level)(LOG_LEVEL_ERR - 1));
	/* tmpfs when there is one: no disk I/O. */
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
				access("/dev/shm", W_OK) == 0 ?
			"/dev/shm" :
			"/tmp";
	remove_stale_dirs(tmp);
	snprintf(dir, sizeof(dir), "%s/" DIR_PREFIX "%ld", tmp, (long)getpid());
	if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST) {
			perror(dir);
			exit(1);
		}
		empty_dir(dir, 0); /* left by an earlier process with our pid */
	}
	atexit(remove_dir);
	return 0;
}

static void
write_file(uint64_t start, const uint8_t *data, size_t size)
{
	char path[8192];
	int fd;

	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", dir, start);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	CHECK(fd >= 0);
	CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	CHECK(close(fd) == 0);
}

static struct spool *
open_spool(void)
{
	struct spool_options o = {
		.dir = dir,
		.max_bytes = (int64_t)1 << 40,
		.segment_bytes = SEGMENT_BYTES,
		.max_payload = MAX_PAYLOAD,
		.sync = SPOOL_SYNC_OFF,
	};
	struct spool *s = NULL;
	int err = spool_open(&o, &s);

	if (err != 0) {
		fprintf(stderr, "spool_open: %s\n", strerror(-err));
		abort();
	}
	return s;
}

/* Reads with `r` until 0; returns the number of records. Every record
 * must lie between the reader's position and the spool's end. */
static size_t
read_all(struct spool *s, struct spool_reader *r)
{
	struct spool_record rec;
	uint64_t pos = spool_reader_pos(r), end = spool_end(s), sum = 0;
	size_t n = 0;
	int rc;

	while ((rc = spool_reader_next(r, &rec)) == 1) {
		CHECK(++n < MAX_READS);
		CHECK(rec.pos >= pos && rec.next > rec.pos && rec.next <= end);
		if (rec.flags & SPOOL_DAMAGED) {
			/* A span: its length, its first bytes, no topic. */
			CHECK(rec.orig_len == rec.next - rec.pos);
			CHECK(rec.payload_len <= rec.orig_len &&
			      rec.payload_len <= SPOOL_DAMAGE_KEEP);
			CHECK(rec.topic_len == 0);
			n--;
		} else {
			CHECK(rec.next - rec.pos ==
			      SPOOL_HEADER_SIZE + rec.topic_len + rec.payload_len);
			CHECK(rec.orig_len >= rec.payload_len);
		}
		CHECK(spool_reader_pos(r) == rec.next);
		pos = rec.next;
		/* Touch every byte, so ASan checks the whole record. */
		for (size_t i = 0; i < rec.topic_len; i++)
			sum += (uint8_t)rec.topic[i];
		for (size_t i = 0; i < rec.payload_len; i++)
			sum += rec.payload[i];
	}
	if (rc != 0) {
		fprintf(stderr, "spool_reader_next: %s at %" PRIu64 "\n", strerror(-rc),
			spool_reader_pos(r));
		abort();
	}
	sink += sum;
	return n;
}

static void
run(const uint8_t *data, size_t size, int layout)
{
	struct spool *s;
	struct spool_reader *r;
	struct spool_record rec;
	struct spool_stats st;
	uint64_t end, bytes;
	size_t n;

	cur_layout = layout;
	empty_dir(dir, 1);
	write_file(0, data, size);
	if (layout == 'B')
		write_file(size, NULL, 0);

	s = open_spool();
	end = spool_end(s);
	spool_get_stats(s, &st);
	/* Positions are never reused: after a cut tail, spool_open starts a
	 * new segment somewhere beyond what the old one held (a gap). */
	CHECK(spool_first(s) == 0);
	CHECK(layout == 'A' ? st.torn_bytes <= size : st.torn_bytes == 0);
	CHECK(st.torn_bytes == 0 ? end == size : end > size);
	CHECK(spool_bytes(s) == size - st.torn_bytes);

	/* Whatever it skips, the reader must get to the end. After
	 * recovery (layout A) damage is left only where whole records
	 * follow it, or as one whole-length record. */
	CHECK(spool_reader_create(s, 0, &r) == 0);
	n = read_all(s, r);
	CHECK(spool_reader_pos(r) == end);
	spool_get_stats(s, &st);
	CHECK(st.damaged_bytes <= size - st.torn_bytes);

	/* The same reader, at the end, must see one new record, then 0. */
	bytes = spool_bytes(s);
	CHECK(spool_append_flags(s, topic, sizeof(topic) - 1, payload, sizeof(payload) - 1, RECV_US,
				 0) == 0);
	CHECK(spool_end(s) == end + RECORD_SIZE);
	CHECK(spool_bytes(s) == bytes + RECORD_SIZE);
	CHECK(spool_reader_next(r, &rec) == 1);
	CHECK(rec.pos == end && rec.next == spool_end(s));
	CHECK(rec.topic_len == sizeof(topic) - 1 && memcmp(rec.topic, topic, rec.topic_len) == 0);
	CHECK(rec.payload_len == sizeof(payload) - 1 &&
	      memcmp(rec.payload, payload, rec.payload_len) == 0);
	CHECK(rec.recv_us == RECV_US && rec.flags == 0);
	CHECK(spool_reader_next(r, &rec) == 0);
	spool_reader_destroy(r);
	end = spool_end(s);
	bytes = spool_bytes(s);
	spool_close(s);

	/* Reopening must find nothing torn and read the same records. */
	s = open_spool();
	CHECK(spool_end(s) == end);
	CHECK(spool_bytes(s) == bytes);
	spool_get_stats(s, &st);
	CHECK(st.torn_bytes == 0);
	CHECK(spool_reader_create(s, 0, &r) == 0);
	CHECK(read_all(s, r) == n + 1);
	CHECK(spool_reader_pos(r) == end);
	spool_reader_destroy(r);
	spool_close(s);
}

/* Layout C: corruption inside the segment being written, below the end
 * (a disk that changed the bytes under a running cordond). One record of
 * exactly `size` bytes is appended to an empty spool, and the input is
 * written over it on disk. The reader must resync without an error and
 * must still return the record appended after that; a restart must
 * recover to a state it reads to the end. */
static void
run_c(const uint8_t *data, size_t size)
{
	struct spool *s;
	struct spool_reader *r;
	struct spool_record rec;
	struct spool_stats st;
	char path[8192];
	uint8_t *fill;
	int fd, rc;

	if (size > MAX_PAYLOAD)
		size = MAX_PAYLOAD;
	if (size < RECORD_MIN)
		return;
	cur_layout = 'C';
	empty_dir(dir, 1);
	s = open_spool();
	CHECK(spool_end(s) == 0);
	fill = calloc(1, size - RECORD_MIN + 1);
	CHECK(fill != NULL);
	CHECK(spool_append_flags(s, topic, sizeof(topic) - 1, fill, size - RECORD_MIN, RECV_US,
				 0) == 0);
	free(fill);
	CHECK(spool_end(s) == size);
	snprintf(path, sizeof(path), "%s/%020d.seg", dir, 0);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	CHECK(close(fd) == 0);

	CHECK(spool_reader_create(s, 0, &r) == 0);
	(void)read_all(s, r);
	CHECK(spool_reader_pos(r) <= size);
	CHECK(spool_append_flags(s, topic, sizeof(topic) - 1, payload, sizeof(payload) - 1, RECV_US,
				 0) == 0);
	/* Records it could not tell from a partial one before may come
	 * first (all below the old end), then the new one, then 0. */
	while ((rc = spool_reader_next(r, &rec)) == 1 && rec.pos < size)
		CHECK(rec.next <= size);
	if (rc == 0 && KNOWN_LONG_HEADER_STALL) {
		spool_reader_destroy(r);
		spool_close(s);
		return;
	}
	CHECK(rc == 1);
	CHECK(rec.pos == size && rec.next == size + RECORD_SIZE);
	CHECK(rec.payload_len == sizeof(payload) - 1 &&
	      memcmp(rec.payload, payload, rec.payload_len) == 0);
	CHECK(spool_reader_next(r, &rec) == 0);
	spool_reader_destroy(r);
	spool_close(s);

	s = open_spool();
	spool_get_stats(s, &st);
	CHECK(st.torn_bytes <= size + RECORD_SIZE);
	/* If the append started a new segment, the corrupt one is an old
	 * segment now, which recovery does not check: the reader skips. */
	CHECK(spool_reader_create(s, 0, &r) == 0);
	(void)read_all(s, r);
	CHECK(spool_reader_pos(r) == spool_end(s));
	spool_reader_destroy(r);
	spool_close(s);
}

/* Layout D: resynchronisation, as a property. The input's first bytes
 * make a spool: byte 0 the number of records (1..48), byte 1 how many of
 * them go into a closed first segment (the rest into the last one), then
 * one byte per record for its payload length. The rest of the input is
 * damage, 4 bytes an operation (at most 8): a position (16 bits, modulo
 * the bytes written), then a control byte (low 3 bits: 1..8 bytes; top
 * two bits: 0-1 xor, 2 set, 3 cut the file short there) and a value.
 *
 * A record is touched when one of its bytes changed or a cut removed
 * one. Every untouched record must be read back at its position,
 * unchanged, before and after a restart; damaged spans must tile the
 * rest. The only excuse: a record that is not one of ours (forged by the
 * damage: a valid checksum inside changed bytes) overlapping it. */
#define D_MAX_RECORDS 48
#define D_MAX_OPS 8

struct d_rec {
	uint64_t pos, next;
	int touched, seen;
};

static void
d_put_record(uint8_t *out, int i, size_t plen)
{
	char tname[16];
	size_t tlen = (size_t)snprintf(tname, sizeof(tname), "t/%d", i);
	uint8_t *h = out, *p = out + SPOOL_HEADER_SIZE + tlen;
	uint64_t v;
	uint32_t u;
	uint16_t w;
	XXH3_state_t st;

	u = htole32(MAGIC);
	memcpy(h, &u, 4);
	u = htole32((uint32_t)plen);
	memcpy(h + 4, &u, 4);
	memcpy(h + 8, &u, 4);
	w = htole16((uint16_t)tlen);
	memcpy(h + 12, &w, 2);
	w = 0;
	memcpy(h + 14, &w, 2);
	v = htole64((uint64_t)(RECV_US + i));
	memcpy(h + 16, &v, 8);
	memcpy(h + SPOOL_HEADER_SIZE, tname, tlen);
	for (size_t j = 0; j < plen; j++)
		p[j] = (uint8_t)(i * 31 + j * 7);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, h, 24);
	XXH3_64bits_update(&st, h + SPOOL_HEADER_SIZE, tlen + plen);
	v = htole64(XXH3_64bits_digest(&st));
	memcpy(h + 24, &v, 8);
}

/* Reads everything, checks the tiling, marks the records of `recs` seen
 * (comparing their bytes with `orig`), and the untouched ones excused by
 * a forged record. Returns the number of foreign records. */
static size_t
d_read(struct spool *s, struct d_rec *recs, int n, const uint8_t *orig, int *excused)
{
	struct spool_reader *r;
	struct spool_record rec;
	uint64_t pos = 0;
	size_t reads = 0, foreign = 0;
	int rc, k = 0;

	for (int i = 0; i < n; i++)
		recs[i].seen = 0;
	CHECK(spool_reader_create(s, 0, &r) == 0);
	while ((rc = spool_reader_next(r, &rec)) == 1) {
		CHECK(++reads < MAX_READS);
		CHECK(rec.pos >= pos && rec.next > rec.pos && rec.next <= spool_end(s));
		pos = rec.next;
		if (rec.flags & SPOOL_DAMAGED)
			continue;
		while (k < n && recs[k].next <= rec.pos)
			k++;
		if (k < n && recs[k].pos == rec.pos && recs[k].next == rec.next) {
			size_t hdr_topic = SPOOL_HEADER_SIZE + rec.topic_len;

			CHECK(memcmp(rec.topic, orig + rec.pos + SPOOL_HEADER_SIZE,
				     rec.topic_len) == 0);
			CHECK(memcmp(rec.payload, orig + rec.pos + hdr_topic, rec.payload_len) ==
			      0);
			CHECK(rec.recv_us == RECV_US + k);
			recs[k].seen = 1;
			continue;
		}
		/* Not one of ours: it excuses the records it overlaps. */
		foreign++;
		for (int i = 0; i < n; i++)
			if (recs[i].pos < rec.next && rec.pos < recs[i].next)
				excused[i] = 1;
	}
	CHECK(rc == 0);
	CHECK(spool_reader_pos(r) == spool_end(s));
	spool_reader_destroy(r);
	return foreign;
}

static void
run_d(const uint8_t *data, size_t size)
{
	static uint8_t orig[D_MAX_RECORDS * (SPOOL_HEADER_SIZE + 16 + 512)];
	static uint8_t dmg[sizeof(orig)];
	struct d_rec recs[D_MAX_RECORDS];
	int excused[D_MAX_RECORDS] = { 0 };
	uint64_t total = 0, split, cut[2];
	struct spool *s;
	struct spool_record rec;
	struct spool_reader *r;
	size_t at;
	int n, k;

	cur_layout = 'D';
	n = 1 + (size > 0 ? data[0] : 0) % D_MAX_RECORDS;
	k = (size > 1 ? data[1] : 0) % (n + 1);
	at = 2;
	for (int i = 0; i < n; i++) {
		size_t plen = (size > at ? data[at] : (uint8_t)i) * 2u;
		char tname[16];
		size_t tlen = (size_t)snprintf(tname, sizeof(tname), "t/%d", i);

		at++;
		recs[i].pos = total;
		d_put_record(orig + total, i, plen);
		total += SPOOL_HEADER_SIZE + tlen + plen;
		recs[i].next = total;
	}
	// cppcheck-suppress uninitvar ; recs[0] to recs[n - 1] set above, and k < n
	split = k < n ? recs[k].pos : total;
	memcpy(dmg, orig, total);
	cut[0] = split;
	cut[1] = total;
	for (int op = 0; op < D_MAX_OPS && at + 4 <= size; op++, at += 4) {
		uint64_t off = (data[at] | (uint64_t)data[at + 1] << 8) % total;
		size_t len = 1 + (data[at + 2] & 7);
		int mode = data[at + 2] >> 6;
		uint8_t val = data[at + 3];

		if (mode == 3) {
			int f = off >= split;

			if (off < cut[f])
				cut[f] = off;
			continue;
		}
		for (size_t j = 0; j < len && off + j < total; j++)
			dmg[off + j] = mode == 2 ? val : (uint8_t)(dmg[off + j] ^ (val | 1));
	}
	for (int i = 0; i < n; i++) {
		int f = recs[i].pos >= split;

		recs[i].touched = recs[i].next > cut[f] ||
			memcmp(orig + recs[i].pos, dmg + recs[i].pos, recs[i].next - recs[i].pos) !=
				0;
	}

	empty_dir(dir, 1);
	if (split > 0)
		write_file(0, dmg, cut[0]);
	write_file(split, dmg + split, cut[1] - split);

	s = open_spool();
	(void)d_read(s, recs, n, orig, excused);
	for (int i = 0; i < n; i++)
		CHECK(recs[i].touched || recs[i].seen || excused[i]);

	/* Appends go on; a restart reads the same. */
	CHECK(spool_reader_create(s, spool_end(s), &r) == 0);
	CHECK(spool_append_flags(s, topic, sizeof(topic) - 1, payload, sizeof(payload) - 1, RECV_US,
				 0) == 0);
	CHECK(spool_reader_next(r, &rec) == 1);
	CHECK(!(rec.flags & SPOOL_DAMAGED) && rec.payload_len == sizeof(payload) - 1);
	CHECK(spool_reader_next(r, &rec) == 0);
	spool_reader_destroy(r);
	spool_close(s);

	s = open_spool();
	{
		struct spool_stats st;

		spool_get_stats(s, &st);
		CHECK(st.torn_bytes == 0);
	}
	(void)d_read(s, recs, n, orig, excused);
	for (int i = 0; i < n; i++)
		CHECK(recs[i].touched || recs[i].seen || excused[i]);
	spool_close(s);
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* Gives every record that frames, from the start, its correct checksum
 * (the layout of spool.c: XXH3-64 of header bytes 0..23, topic, payload). */
static void
seal_records(uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= SPOOL_HEADER_SIZE) {
		uint8_t *h = data + off;
		uint32_t plen = get_u32(h + 4);
		XXH3_state_t st;
		uint16_t tlen;
		uint64_t sum;
		size_t rec;

		memcpy(&tlen, h + 12, 2);
		rec = SPOOL_HEADER_SIZE + le16toh(tlen) + (size_t)plen;
		if (get_u32(h) != MAGIC || get_u32(h + 8) < plen || rec > size - off)
			break;
		XXH3_64bits_reset(&st);
		XXH3_64bits_update(&st, h, 24);
		XXH3_64bits_update(&st, h + SPOOL_HEADER_SIZE, rec - SPOOL_HEADER_SIZE);
		sum = htole64(XXH3_64bits_digest(&st));
		memcpy(h + 24, &sum, 8);
		off += rec;
	}
}

size_t
LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size = LLVMFuzzerMutate(data, size, max_size);
	if (seed & 1)
		seal_records(data, size);
	return size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, 'A');
	run(data, size, 'B');
	run_c(data, size);
	run_d(data, size);
	return 0;
}
