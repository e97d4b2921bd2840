/* spool.c - append-only segment files with length + checksum framing.
 *
 * Record layout (little endian), 32-byte header then topic then payload:
 *   0  u32 magic "CSR1"       4  u32 payload_len (as stored)
 *   8  u32 orig_len           12 u16 topic_len   14 u16 flags (TRUNCATED, RETAINED, source)
 *   16 i64 recv_us            24 u64 XXH3-64 of bytes 0..23, topic, payload
 * The writer (Paho's callback thread) appends with one writev() under a
 * mutex and then publishes the new end position; readers (the main loop)
 * only read below that position, so they always see whole records.
 *
 * Damage. A record that does not check is not trusted to say where the
 * next one starts: the reader looks byte by byte (for the magic, a header
 * that checks and a checksum that checks) for the next whole record, and
 * hands the bytes in between up as one SPOOL_DAMAGED span. Below the end
 * position every record is whole, so damage that runs up to the end of
 * what is written ends there. At open the same reader runs over the last
 * segment: a span with whole records after it is kept (the readers skip
 * it), a span that runs to the end of the file is a torn tail and is cut
 * (unless it is one whole-length record whose checksum fails: damage).
 *
 * Descriptors. Each segment file is opened once, when it is created or
 * found at open, and closed when it is released: readers read through
 * duplicates of these, so a file deleted while we run still reads until
 * what it holds is committed. A reader holds its duplicate only while it
 * reads (a parked reader must not keep a released file's blocks). Names
 * are resolved only relative to the directory descriptor opened at start
 * (openat, unlinkat, renameat). */
#include "spool.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "log.h"

#define MAGIC 0x31525343u /* "CSR1" */
static const uint8_t magic_bytes[4] = { 'C', 'S', 'R', '1' };
#define MAX_STORED_PAYLOAD (16u << 20)
/* Bounds of what one segment can hold: the largest segment_bytes the
 * configuration allows, plus one record of the largest kind. */
#define SPOOL_MAX_SEGMENT (1ull << 30)
#define SPOOL_MAX_RECORD (SPOOL_HEADER_SIZE + 65535ull + MAX_STORED_PAYLOAD)
#define SEG_SUFFIX ".seg"
#define SEG_NAME_LEN (20 + sizeof(SEG_SUFFIX)) /* with the NUL */
#define READ_BUF (1u << 20)

struct seg {
	uint64_t start; /* position of its first byte */
	uint64_t len;	/* bytes in the file */
	uint64_t gen;	/* tells a recreated segment from an old one */
	int fd;		/* open until released (the last: for append too) */
};

struct spool {
	char *dir;
	struct spool_options opt;
	char id[33];

	pthread_mutex_t lock; /* everything below but the atomics */
	int dir_fd;
	dev_t dir_dev;
	ino_t dir_ino;
	struct seg *segs; /* ascending; the last one is being written */
	size_t nsegs, cap;
	uint64_t next_gen;
	uint64_t closed_bytes; /* bytes in the segments before the last */
	uint64_t damage_mark;  /* damaged spans before this are counted */
	int64_t linked_at_ns;  /* the last append that checked its file was linked */
	int reclaim_logged;    /* a failed reclaim was logged */
	struct log_ratelimit damage_rl;

	_Atomic uint64_t end;
	_Atomic uint64_t first;
	_Atomic int write_err; /* -errno of the last failed append, or 0 */
	_Atomic int low_disk;  /* spool_set_low_disk(): reclaim whatever the size */
	_Atomic int gone;      /* enum spool_dir_state */
	_Atomic uint64_t damaged_spans, damaged_bytes;
	_Atomic uint64_t syncs; /* fdatasyncs of segment data done */
	uint64_t torn_bytes;
};

struct spool_reader {
	struct spool *spool;
	uint64_t pos; /* position of buf[off] */
	int have_seg; /* the segment below is known */
	uint64_t seg_start, seg_gen;
	uint64_t de;	      /* data end of the segment (position), as last seen */
	uint64_t limit;	      /* the next segment's start, UINT64_MAX for the last */
	uint64_t missing_end; /* the file ends before de: bytes up to here are missing */
	uint8_t *buf;
	size_t cap, off, len; /* valid bytes: buf[off..len) */
	int scanning;	      /* looking for the next whole record after damage */
	uint64_t span_start;  /* where the damage began */
	uint8_t *span;	      /* the first bytes of a damaged span */
	int quiet;	      /* recovery's own reader: neither counts nor logs */
};

static void
seg_name(uint64_t start, char *buf, size_t len)
{
	snprintf(buf, len, "%020" PRIu64 SEG_SUFFIX, start);
}

static void
put_u16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}
static void
put_u32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static void
put_u64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}
static uint16_t
get_u16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return le16toh(v);
}
static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}
static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint64_t
record_checksum(const uint8_t *hdr, const void *topic, size_t topic_len, const void *payload,
		size_t payload_len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 24);
	XXH3_64bits_update(&st, topic, topic_len);
	XXH3_64bits_update(&st, payload, payload_len);
	return XXH3_64bits_digest(&st);
}

/* Checks the header at `hdr`; returns the record's total size or 0. */
static size_t
header_size(const uint8_t *hdr)
{
	uint32_t plen = get_u32(hdr + 4);

	if (get_u32(hdr) != MAGIC || plen > MAX_STORED_PAYLOAD || get_u32(hdr + 8) < plen)
		return 0;
	return SPOOL_HEADER_SIZE + get_u16(hdr + 12) + (size_t)plen;
}

static int
record_valid(const uint8_t *rec, size_t size)
{
	size_t tlen = get_u16(rec + 12);

	return record_checksum(rec, rec + SPOOL_HEADER_SIZE, tlen, rec + SPOOL_HEADER_SIZE + tlen,
			       size - SPOOL_HEADER_SIZE - tlen) == get_u64(rec + 24);
}

static int
mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0750) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Writes `data` to dirfd/name through a temporary file and renameat(2);
 * with `sync`, fdatasyncs the file and fsyncs the directory. Returns 0 or
 * a negative errno. */
static int
write_file_atomic_len(int dirfd, const char *name, const void *data, size_t len, int sync)
{
	char tmp[256];
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (!err && sync && fdatasync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && renameat(dirfd, tmp, dirfd, name) < 0)
		err = -errno;
	if (err)
		unlinkat(dirfd, tmp, 0);
	else if (sync)
		fsync(dirfd);
	return err;
}

static int
write_file_atomic(int dirfd, const char *name, const char *data, int sync)
{
	return write_file_atomic_len(dirfd, name, data, strlen(data), sync);
}

/* Reads spool.id, or makes a random one and writes it (synced). Returns
 * 0 or a negative errno. */
static int
load_or_create_id(struct spool *spool)
{
	char buf[64];
	uint8_t raw[16];
	int fd = openat(spool->dir_fd, "spool.id", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		close(fd);
		if (n >= 32) {
			memcpy(spool->id, buf, 32);
			spool->id[32] = '\0';
			return 0;
		}
	}
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return -EIO;
	for (int i = 0; i < 16; i++)
		snprintf(spool->id + 2 * i, 3, "%02x", raw[i]);
	snprintf(buf, sizeof(buf), "%s\n", spool->id);
	return write_file_atomic(spool->dir_fd, "spool.id", buf, 1);
}

static int
cmp_seg(const void *a, const void *b)
{
	uint64_t x = ((const struct seg *)a)->start, y = ((const struct seg *)b)->start;

	return x < y ? -1 : x > y;
}

/* Adds a segment (its descriptor now owned by the spool) at the end of
 * the list. Returns 0 or -ENOMEM. */
static int
push_seg(struct spool *spool, uint64_t start, uint64_t len, int fd)
{
	if (spool->nsegs == spool->cap) {
		size_t cap = spool->cap ? spool->cap * 2 : 16;
		struct seg *segs = realloc(spool->segs, cap * sizeof(*segs));

		if (!segs)
			return -ENOMEM;
		spool->segs = segs;
		spool->cap = cap;
	}
	spool->segs[spool->nsegs++] = (struct seg){
		.start = start,
		.len = len,
		.gen = ++spool->next_gen,
		.fd = fd,
	};
	return 0;
}

/* Index of the segment holding `pos` (the last one starting at or before
 * it), or -1 when pos lies before the first. Under the lock. */
static ssize_t
find_seg(const struct spool *spool, uint64_t pos)
{
	size_t lo = 0, hi = spool->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (spool->segs[mid].start <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ssize_t)lo - 1;
}

/* Lists and opens the segment files (read-only; spool_open reopens the
 * last for appending). Returns 0 or a negative errno. */
static int
list_segments(struct spool *spool)
{
	int dfd = fcntl(spool->dir_fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	int err = 0;

	if (!d) {
		err = -errno;
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *end;
		uint64_t start;
		int fd;

		if (strlen(de->d_name) != 20 + strlen(SEG_SUFFIX) ||
		    strcmp(de->d_name + 20, SEG_SUFFIX) != 0)
			continue;
		start = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + 20)
			continue;
		fd = openat(spool->dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			err = -errno;
			if (fd >= 0)
				close(fd);
			break;
		}
		err = push_seg(spool, start, (uint64_t)st.st_size, fd);
		if (err) {
			close(fd);
			break;
		}
	}
	closedir(d);
	if (!err && spool->nsegs > 1)
		qsort(spool->segs, spool->nsegs, sizeof(*spool->segs), cmp_seg);
	return err;
}

/* Creates the segment file starting at `start` (a name not used before),
 * fsyncs the directory and adds it as the last segment. Returns 0 or a
 * negative errno. */
static int
add_segment(struct spool *spool, uint64_t start)
{
	char name[SEG_NAME_LEN];
	int fd, err;

	seg_name(start, name, sizeof(name));
	fd = openat(spool->dir_fd, name, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	err = fsync(spool->dir_fd) < 0 ? -errno : push_seg(spool, start, 0, fd);
	if (err < 0) {
		close(fd);
		unlinkat(spool->dir_fd, name, 0);
		return err;
	}
	return 0;
}

static int reader_create(struct spool *spool, uint64_t pos, int quiet,
			 struct spool_reader **ret_reader);

/* Reads the last segment through a reader of its own. Damage followed by
 * whole records is kept; damage running to the end of the file is a torn
 * tail and is cut, unless it is one whole-length record whose checksum
 * fails (then only what follows it is cut). After a cut, new records
 * start in a new segment beyond anything the cut one can have held.
 * Returns 0 or a negative errno. */
static int
recover_last(struct spool *spool)
{
	struct seg *last = &spool->segs[spool->nsegs - 1];
	uint64_t start = last->start, file_end = start + last->len, cut = file_end, ckpt;
	char name[SEG_NAME_LEN];
	struct spool_reader *r;
	struct spool_record rec;
	int fd, rc;

	seg_name(start, name, sizeof(name));
	/* Reopen it for appending (and for the cut). */
	fd = openat(spool->dir_fd, name, O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(last->fd);
	last->fd = fd;

	atomic_store(&spool->end, file_end);
	atomic_store(&spool->first, spool->segs[0].start);
	rc = reader_create(spool, start, 1, &r);
	if (rc < 0)
		return rc;
	while ((rc = spool_reader_next(r, &rec)) == 1) {
		size_t whole;

		if (!(rec.flags & SPOOL_DAMAGED))
			continue;
		if (rec.next < file_end) {
			log_warn("spool: damaged data in %s/%s at offset %" PRIu64 " (%" PRIu64
				 " bytes) with whole records after it: kept; readers skip it",
				 spool->dir, name, rec.pos - start, rec.next - rec.pos);
			continue;
		}
		whole = rec.payload_len >= SPOOL_HEADER_SIZE ? header_size(rec.payload) : 0;
		if (whole && whole <= rec.next - rec.pos) {
			log_warn("spool: the last record of %s/%s (offset %" PRIu64
				 ", %zu bytes) is"
				 " whole but its checksum fails: kept as damage; readers skip it",
				 spool->dir, name, rec.pos - start, whole);
			cut = rec.pos + whole;
		} else {
			cut = rec.pos;
		}
		break;
	}
	spool_reader_destroy(r);
	if (rc < 0)
		return rc;
	ckpt = spool_load_checkpoint(spool);
	if (cut < file_end || ckpt > file_end) {
		/* Positions are never reused: a checkpoint may already name a
		 * position inside the part that is cut - even beyond what the
		 * torn file still shows (committed before a power loss tore it
		 * on disk), or beyond a file that a power loss cut cleanly at
		 * its last synced record (the checkpoint's rename reached the
		 * disk, the segment's unsynced tail did not). So new records
		 * start in a new segment beyond anything the old one can ever
		 * have held: a segment never grows past the largest segment
		 * size plus one record. The gap holds no data; readers step
		 * over it. */
		uint64_t held = last->len, next;

		spool->torn_bytes = file_end - cut;
		if (cut == file_end) {
			log_warn(
				"spool: the local checkpoint (position %" PRIu64 ") lies beyond the"
				" end of %s/%s (position %" PRIu64
				"): a power loss took the segment's"
				" unsynced tail, up to [spool] sync_interval of acknowledged messages",
				ckpt, spool->dir, name, file_end);
		} else {
			log_warn(
				"spool: torn tail in %s/%s at offset %" PRIu64 ": %" PRIu64
				" bytes cut (an"
				" incomplete last write: cordond or the machine stopped during it; a message"
				" not acknowledged is sent again by the broker, and a power loss may also take"
				" up to [spool] sync_interval of acknowledged ones)",
				spool->dir, name, cut - start, spool->torn_bytes);
		}
		if (ftruncate(last->fd, (off_t)(cut - start)) < 0 || fsync(last->fd) < 0)
			return -errno;
		last->len = cut - start;
		next = start + (held > SPOOL_MAX_SEGMENT ? held : SPOOL_MAX_SEGMENT) +
			SPOOL_MAX_RECORD;
		log_notice("spool: new records start at position %" PRIu64 " in a new segment;"
			   " positions %" PRIu64 "..%" PRIu64 " are a gap that holds no data",
			   next, cut, next);
		rc = add_segment(spool, next);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
close_segments(struct spool *spool)
{
	for (size_t i = 0; i < spool->nsegs; i++)
		if (spool->segs[i].fd >= 0)
			close(spool->segs[i].fd);
	spool->nsegs = 0;
}

int
spool_open(const struct spool_options *opt, struct spool **ret_spool)
{
	struct spool *spool;
	struct stat st;
	int err;

	spool = calloc(1, sizeof(*spool));
	if (!spool)
		return -ENOMEM;
	spool->dir_fd = -1;
	pthread_mutex_init(&spool->lock, NULL);
	spool->damage_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	spool->opt = *opt;
	spool->dir = strdup(opt->dir);
	if (!spool->dir) {
		err = -ENOMEM;
		goto fail;
	}
	spool->opt.dir = spool->dir;
	err = mkdir_p(spool->dir);
	if (err)
		goto fail;
	spool->dir_fd = open(spool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool->dir_fd < 0 || fstat(spool->dir_fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	spool->dir_dev = st.st_dev;
	spool->dir_ino = st.st_ino;
	err = load_or_create_id(spool);
	if (err)
		goto fail;
	err = list_segments(spool);
	if (err)
		goto fail;
	if (spool->nsegs == 0)
		err = add_segment(spool, spool_load_checkpoint(spool));
	else
		err = recover_last(spool);
	if (err)
		goto fail;
	for (size_t i = 0; i + 1 < spool->nsegs; i++)
		spool->closed_bytes += spool->segs[i].len;
	{
		const struct seg *last = &spool->segs[spool->nsegs - 1];

		atomic_store(&spool->end, last->start + last->len);
	}
	atomic_store(&spool->first, spool->segs[0].start);
	*ret_spool = spool;
	return 0;
fail:
	spool_close(spool);
	return err;
}

void
spool_close(struct spool *spool)
{
	if (!spool)
		return;
	if (spool->nsegs > 0 && spool->opt.sync != SPOOL_SYNC_OFF)
		fdatasync(spool->segs[spool->nsegs - 1].fd);
	close_segments(spool);
	if (spool->dir_fd >= 0)
		close(spool->dir_fd);
	pthread_mutex_destroy(&spool->lock);
	free(spool->segs);
	free(spool->dir);
	free(spool);
}

/* Starts a new segment at the current end; the old one keeps its
 * descriptor (readers). Under the lock. Returns 0 or a negative errno. */
static int
rotate(struct spool *spool)
{
	const struct seg *last = &spool->segs[spool->nsegs - 1];
	uint64_t len = last->len;
	int err;

	if (spool->opt.sync != SPOOL_SYNC_OFF) {
		if (fdatasync(last->fd) < 0)
			return -errno;
		atomic_fetch_add(&spool->syncs, 1);
	}
	err = add_segment(spool, atomic_load(&spool->end));
	if (err)
		return err;
	spool->closed_bytes += len;
	return 0;
}

/* Is the segment being written still linked? Under the lock. Returns 1,
 * or 0 when it was deleted (and marks the spool so). */
static int
segment_linked(struct spool *spool)
{
	struct stat st;

	if (fstat(spool->segs[spool->nsegs - 1].fd, &st) == 0 && st.st_nlink == 0) {
		int ok = SPOOL_DIR_OK;

		atomic_compare_exchange_strong(&spool->gone, &ok, SPOOL_DIR_DELETED);
		return 0;
	}
	return 1;
}

/* segment_linked(), at most once a millisecond: an fstat costs about as
 * much as the append's writev. Within that millisecond a record may still
 * be acknowledged into a file deleted under us; it is read through the
 * open descriptor all the same. Under the lock. */
static int
linked_lately(struct spool *spool)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (now - spool->linked_at_ns < 1000000)
		return 1;
	spool->linked_at_ns = now;
	return segment_linked(spool);
}

static int
gone_errno(int gone)
{
	return gone == SPOOL_DIR_REPLACED ? -ESTALE : -ENOENT;
}

int
spool_append_flags(struct spool *spool, const char *topic, size_t topic_len, const void *payload,
		   size_t payload_len, int64_t recv_us, unsigned flags)
{
	uint8_t hdr[SPOOL_HEADER_SIZE];
	size_t stored = payload_len, size, done = 0;
	struct iovec iov[3];
	struct seg *last;
	int err = 0, gone;

	if (topic_len > UINT16_MAX)
		return -EMSGSIZE;
	if (stored > (size_t)spool->opt.max_payload)
		stored = (size_t)spool->opt.max_payload;
	size = SPOOL_HEADER_SIZE + topic_len + stored;

	put_u32(hdr, MAGIC);
	put_u32(hdr + 4, (uint32_t)stored);
	put_u32(hdr + 8, payload_len > UINT32_MAX ? UINT32_MAX : (uint32_t)payload_len);
	put_u16(hdr + 12, (uint16_t)topic_len);
	put_u16(hdr + 14,
		(uint16_t)((stored < payload_len ? SPOOL_TRUNCATED : 0) |
			   (flags & (SPOOL_RETAINED | SPOOL_SOURCE_MASK))));
	put_u64(hdr + 16, (uint64_t)recv_us);
	put_u64(hdr + 24, record_checksum(hdr, topic, topic_len, payload, stored));
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)topic, topic_len };
	iov[2] = (struct iovec){ (void *)payload, stored };

	pthread_mutex_lock(&spool->lock);
	if ((gone = atomic_load(&spool->gone)) != SPOOL_DIR_OK) {
		pthread_mutex_unlock(&spool->lock);
		return gone_errno(gone);
	}
	last = &spool->segs[spool->nsegs - 1];
	if (spool->closed_bytes + last->len + size > (uint64_t)spool->opt.max_bytes) {
		pthread_mutex_unlock(&spool->lock);
		return -ENOSPC;
	}
	if (last->len > 0 && last->len + size > (uint64_t)spool->opt.segment_bytes) {
		err = rotate(spool);
		if (err)
			goto fail;
		last = &spool->segs[spool->nsegs - 1];
	}
	while (done < size) {
		struct iovec v[3];
		int n = 0;
		size_t skip = done;
		ssize_t w;

		for (int i = 0; i < 3; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			v[n].iov_base = (char *)iov[i].iov_base + skip;
			v[n].iov_len = iov[i].iov_len - skip;
			skip = 0;
			n++;
		}
		w = writev(last->fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		done += (size_t)w;
	}
	if (!err && spool->opt.sync == SPOOL_SYNC_ALWAYS) {
		if (fdatasync(last->fd) < 0)
			err = -errno;
		else
			atomic_fetch_add(&spool->syncs, 1);
	}
	if (err || !linked_lately(spool)) {
		/* Leave no partial (or unsynced, or unlinked) record behind:
		 * the next append must land at the position we know. */
		if (done && ftruncate(last->fd, (off_t)last->len) < 0)
			log_err("spool: cannot cut a partial record: %s", strerror(errno));
		if (!err) {
			pthread_mutex_unlock(&spool->lock);
			return -ENOENT;
		}
		goto fail;
	}
	last->len += size;
	atomic_store_explicit(&spool->end, spool->end + size, memory_order_release);
	atomic_store(&spool->write_err, 0);
	pthread_mutex_unlock(&spool->lock);
	return 0;
fail:
	atomic_store(&spool->write_err, err);
	pthread_mutex_unlock(&spool->lock);
	return err;
}

int
spool_write_error(struct spool *spool)
{
	return atomic_load(&spool->write_err);
}

void
spool_set_low_disk(struct spool *spool, int low)
{
	atomic_store(&spool->low_disk, low);
}

enum spool_dir_state
spool_check_dir(struct spool *spool)
{
	struct stat st, path;
	int state, rc;

	if ((state = atomic_load(&spool->gone)) != SPOOL_DIR_OK)
		return (enum spool_dir_state)state;
	pthread_mutex_lock(&spool->lock);
	rc = stat(spool->dir, &path) < 0 ? errno : 0;
	if (!segment_linked(spool) || (fstat(spool->dir_fd, &st) == 0 && st.st_nlink == 0) ||
	    rc == ENOENT || rc == ENOTDIR)
		state = SPOOL_DIR_DELETED;
	else if (rc == 0 && (path.st_dev != spool->dir_dev || path.st_ino != spool->dir_ino))
		state = SPOOL_DIR_REPLACED;
	if (state != SPOOL_DIR_OK) {
		int ok = SPOOL_DIR_OK;

		atomic_compare_exchange_strong(&spool->gone, &ok, state);
		state = atomic_load(&spool->gone);
	}
	pthread_mutex_unlock(&spool->lock);
	return (enum spool_dir_state)state;
}

/* Does the directory hold a spool (spool.id or a segment file)? Returns 1,
 * 0, or a negative errno. */
static int
holds_spool(int dirfd)
{
	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	int found = 0;

	if (!d) {
		int err = -errno;

		if (dfd >= 0)
			close(dfd);
		return err;
	}
	while (!found && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		found = strcmp(de->d_name, "spool.id") == 0 ||
			(n > strlen(SEG_SUFFIX) &&
			 strcmp(de->d_name + n - strlen(SEG_SUFFIX), SEG_SUFFIX) == 0);
	}
	closedir(d);
	return found;
}

/* Bytes of the segment files at positions from `pos` on (with
 * `deleted_only`, only of the files no longer linked). Under the lock. */
static uint64_t
pending_locked(const struct spool *spool, uint64_t pos, int deleted_only)
{
	uint64_t n = 0;

	for (size_t i = 0; i < spool->nsegs; i++) {
		const struct seg *s = &spool->segs[i];
		uint64_t from = s->start > pos ? s->start : pos, to = s->start + s->len;
		struct stat st;

		if (to <= from)
			continue;
		if (deleted_only && !(fstat(s->fd, &st) == 0 && st.st_nlink == 0))
			continue;
		n += to - from;
	}
	return n;
}

int
spool_recreate(struct spool *spool, uint64_t committed)
{
	char name[SEG_NAME_LEN], buf[128];
	uint64_t end;
	struct stat st;
	int dfd = -1, fd = -1, err;

	if (atomic_load(&spool->gone) == SPOOL_DIR_OK)
		return 0;
	pthread_mutex_lock(&spool->lock);
	if (pending_locked(spool, committed, 0) > 0) {
		err = -EBUSY;
		goto out;
	}
	err = mkdir_p(spool->dir);
	if (err)
		goto out;
	dfd = open(spool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (st.st_dev != spool->dir_dev || st.st_ino != spool->dir_ino) {
		/* Another directory: take it only if it holds no spool (a
		 * spool of its own is not ours to write into). */
		err = holds_spool(dfd);
		if (err) {
			err = err > 0 ? -EEXIST : err;
			goto out;
		}
	}
	/* Everything is committed: the old files go (where they still exist). */
	for (size_t i = 0; i < spool->nsegs; i++) {
		seg_name(spool->segs[i].start, name, sizeof(name));
		unlinkat(spool->dir_fd, name, 0);
	}
	end = atomic_load(&spool->end);
	snprintf(buf, sizeof(buf), "%s\n", spool->id);
	if ((err = write_file_atomic(dfd, "spool.id", buf, 1)) < 0)
		goto out;
	snprintf(buf, sizeof(buf), "%s %" PRIu64 "\n", spool->id, committed);
	if ((err = write_file_atomic(dfd, "checkpoint", buf, 1)) < 0)
		goto out;
	seg_name(end, name, sizeof(name));
	fd = openat(dfd, name, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0 || fsync(dfd) < 0) {
		err = -errno;
		goto out;
	}
	close_segments(spool);
	err = push_seg(spool, end, 0, fd); /* cannot fail: cap >= 1 */
	if (err)
		goto out;
	fd = -1;
	close(spool->dir_fd);
	spool->dir_fd = dfd;
	dfd = -1;
	spool->dir_dev = st.st_dev;
	spool->dir_ino = st.st_ino;
	spool->closed_bytes = 0;
	atomic_store(&spool->first, end);
	atomic_store(&spool->write_err, 0);
	atomic_store(&spool->gone, SPOOL_DIR_OK);
out:
	if (fd >= 0) {
		close(fd);
		unlinkat(dfd, name, 0);
	}
	if (dfd >= 0)
		close(dfd);
	pthread_mutex_unlock(&spool->lock);
	return err;
}

int
spool_sync(struct spool *spool)
{
	int fd, err = 0;

	pthread_mutex_lock(&spool->lock);
	fd = fcntl(spool->segs[spool->nsegs - 1].fd, F_DUPFD_CLOEXEC, 3);
	pthread_mutex_unlock(&spool->lock);
	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		err = -errno;
	else
		atomic_fetch_add(&spool->syncs, 1);
	close(fd);
	return err;
}

uint64_t
spool_end(struct spool *spool)
{
	return atomic_load_explicit(&spool->end, memory_order_acquire);
}

uint64_t
spool_bytes(struct spool *spool)
{
	uint64_t n;

	pthread_mutex_lock(&spool->lock);
	n = spool->closed_bytes + spool->segs[spool->nsegs - 1].len;
	pthread_mutex_unlock(&spool->lock);
	return n;
}

uint64_t
spool_pending(struct spool *spool, uint64_t pos)
{
	uint64_t n;

	pthread_mutex_lock(&spool->lock);
	n = pending_locked(spool, pos, 0);
	pthread_mutex_unlock(&spool->lock);
	return n;
}

uint64_t
spool_pending_deleted(struct spool *spool, uint64_t pos)
{
	uint64_t n;

	pthread_mutex_lock(&spool->lock);
	n = pending_locked(spool, pos, 1);
	pthread_mutex_unlock(&spool->lock);
	return n;
}

uint64_t
spool_first(struct spool *spool)
{
	return atomic_load(&spool->first);
}

const char *
spool_id(struct spool *spool)
{
	return spool->id;
}

void
spool_get_stats(struct spool *spool, struct spool_stats *ret_stats)
{
	ret_stats->torn_bytes = spool->torn_bytes;
	ret_stats->damaged_spans = atomic_load(&spool->damaged_spans);
	ret_stats->damaged_bytes = atomic_load(&spool->damaged_bytes);
	ret_stats->syncs = atomic_load(&spool->syncs);
}

/* Deletes the first segment. Under the lock. Returns 0, or a negative
 * errno when its file cannot be deleted (it is kept then). */
static int
drop_first(struct spool *spool)
{
	char name[SEG_NAME_LEN];

	seg_name(spool->segs[0].start, name, sizeof(name));
	if (unlinkat(spool->dir_fd, name, 0) < 0 && errno != ENOENT) {
		int err = -errno;

		log_warn("spool: cannot delete %s/%s: %s", spool->dir, name, strerror(errno));
		return err;
	}
	close(spool->segs[0].fd);
	spool->closed_bytes -= spool->segs[0].len;
	memmove(spool->segs, spool->segs + 1, (spool->nsegs - 1) * sizeof(*spool->segs));
	spool->nsegs--;
	atomic_store(&spool->first, spool->segs[0].start);
	return 0;
}

/* Is a segment of `len` bytes big enough to be worth replacing once it is
 * all committed: a quarter of segment_bytes, or a sixteenth of the file
 * system (which may be smaller than one segment)? Under the lock. */
static int
is_big(const struct spool *spool, uint64_t len)
{
	struct statvfs sv;

	return len >= (uint64_t)spool->opt.segment_bytes / 4 ||
		(fstatvfs(spool->dir_fd, &sv) == 0 &&
		 len >= (uint64_t)sv.f_blocks * sv.f_frsize / 16);
}

void
spool_release(struct spool *spool, uint64_t pos)
{
	const struct seg *last;
	int werr;

	pthread_mutex_lock(&spool->lock);
	while (spool->nsegs > 1 && spool->segs[1].start <= pos)
		if (drop_first(spool) < 0)
			goto out;
	last = &spool->segs[spool->nsegs - 1];
	werr = atomic_load(&spool->write_err);
	if (last->len > 0 && pos >= last->start + last->len &&
	    atomic_load(&spool->gone) == SPOOL_DIR_OK &&
	    (werr || atomic_load(&spool->low_disk) || is_big(spool, last->len))) {
		/* All of the segment being written is committed, and it is
		 * big, or the disk takes no more: start a new one so that
		 * this one can go. */
		uint64_t len = last->len;
		int err = rotate(spool);

		if (err) {
			if (!spool->reclaim_logged)
				log_err("spool: cannot start a new segment to free the committed one"
					" (%" PRIu64 " bytes): %s; trying again",
					len, strerror(-err));
			spool->reclaim_logged = 1;
			goto out;
		}
		log_msg(werr || spool->reclaim_logged ? LOG_LEVEL_NOTICE : LOG_LEVEL_DEBUG,
			"spool: the segment being written was all committed; deleted it (%" PRIu64
			" bytes) to make room%s%s",
			len, werr ? ": appends failed with " : "", werr ? strerror(-werr) : "");
		spool->reclaim_logged = 0;
		while (spool->nsegs > 1 && spool->segs[1].start <= pos)
			if (drop_first(spool) < 0)
				break;
	}
out:
	pthread_mutex_unlock(&spool->lock);
}

size_t
spool_stored_len(const struct spool *spool, size_t len)
{
	return len > (size_t)spool->opt.max_payload ? (size_t)spool->opt.max_payload : len;
}

/* A duplicate of the directory's descriptor taken under the lock: files
 * are read and written outside it, so that the receive thread's appends
 * (inside Paho's lock) never wait for that I/O. */
static int
dir_dup(struct spool *spool)
{
	int dfd;

	pthread_mutex_lock(&spool->lock);
	dfd = fcntl(spool->dir_fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&spool->lock);
	return dfd < 0 ? -errno : dfd;
}

/* The directory that holds side file `name` ("file", or "subdir/file"
 * for a file of a subdirectory of the spool's, made (0750) when `make`
 * and missing), as a descriptor of its own, and in *ret_base the name in
 * it. Returns the descriptor or a negative errno (-EINVAL: more than one
 * level, or an empty part). */
static int
side_dir(struct spool *spool, const char *name, int make, const char **ret_base)
{
	const char *slash = strchr(name, '/');
	char sub[256];
	int dfd = dir_dup(spool), fd;

	*ret_base = name;
	if (dfd < 0 || !slash)
		return dfd;
	if (slash == name || !slash[1] || strchr(slash + 1, '/') ||
	    (size_t)(slash - name) >= sizeof(sub)) {
		close(dfd);
		return -EINVAL;
	}
	memcpy(sub, name, (size_t)(slash - name));
	sub[slash - name] = '\0';
	fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && make) {
		if (mkdirat(dfd, sub, 0750) < 0 && errno != EEXIST) {
			int err = -errno;

			close(dfd);
			return err;
		}
		fsync(dfd);
		fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		fd = -errno;
	close(dfd);
	*ret_base = slash + 1;
	return fd;
}

int
spool_write_file(struct spool *spool, const char *name, const void *buf, size_t len)
{
	const char *base;
	int err, dfd = side_dir(spool, name, 1, &base);

	if (dfd < 0)
		return dfd;
	err = write_file_atomic_len(dfd, base, buf, len, 1);
	close(dfd);
	return err;
}

int
spool_open_file(struct spool *spool, const char *name)
{
	const char *base;
	int dfd = side_dir(spool, name, 1, &base), fd;

	if (dfd < 0)
		return dfd;
	fd = openat(dfd, base, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		fd = -errno;
	close(dfd);
	return fd;
}

int
spool_read_file(struct spool *spool, const char *name, size_t max, void **ret_buf, size_t *ret_len)
{
	const char *base;
	int dfd = side_dir(spool, name, 0, &base), fd, err = 0;
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;

	if (dfd < 0)
		return dfd;
	fd = openat(dfd, base, O_RDONLY | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if ((uint64_t)st.st_size > max)
		err = -EFBIG;
	else if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		err = -ENOMEM;
	while (!err && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n < 0 ? -errno : -EIO; /* shrank under us */
		else
			got += (size_t)n;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	*ret_buf = buf;
	*ret_len = got;
	return 0;
}

uint64_t
spool_load_checkpoint(struct spool *spool)
{
	char id[64];
	unsigned long long pos;
	FILE *f;
	int fd, ok;

	fd = openat(spool->dir_fd, "checkpoint", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return 0;
	}
	ok = fscanf(f, "%63s %llu", id, &pos) == 2 && strcmp(id, spool->id) == 0;
	fclose(f);
	return ok ? pos : 0;
}

int
spool_save_checkpoint(struct spool *spool, uint64_t pos)
{
	char buf[128];
	int err, dfd;

	snprintf(buf, sizeof(buf), "%s %" PRIu64 "\n", spool->id, pos);
	/* written outside the lock: not at every commit under it */
	if ((dfd = dir_dup(spool)) < 0)
		return dfd;
	err = write_file_atomic(dfd, "checkpoint", buf, 0);
	close(dfd);
	return err;
}

static int
reader_create(struct spool *spool, uint64_t pos, int quiet, struct spool_reader **ret_reader)
{
	struct spool_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->cap = quiet ? READ_BUF / 16 : READ_BUF; /* recovery reads once, sequentially */
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return -ENOMEM;
	}
	r->spool = spool;
	r->pos = pos;
	r->quiet = quiet;
	*ret_reader = r;
	return 0;
}

int
spool_reader_create(struct spool *spool, uint64_t pos, struct spool_reader **ret_reader)
{
	return reader_create(spool, pos, 0, ret_reader);
}

void
spool_reader_destroy(struct spool_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r->span);
	free(r);
}

uint64_t
spool_reader_pos(const struct spool_reader *r)
{
	return r->pos;
}

/* Forgets the segment and the buffer; the next read starts at `pos`. */
static void
reset(struct spool_reader *r, uint64_t pos)
{
	r->have_seg = 0;
	r->pos = pos;
	r->off = r->len = 0;
	r->scanning = 0;
	r->missing_end = 0;
}

void
spool_reader_seek(struct spool_reader *r, uint64_t pos)
{
	if (pos != r->pos || r->scanning)
		reset(r, pos);
}

static void
advance(struct spool_reader *r, size_t n)
{
	r->off += n;
	r->pos += n;
}

/* Finds the segment holding r->pos. Moves r->pos over a gap left by a
 * cut tail (no data there), or to the first segment when it lies before
 * it. */
static void
open_seg(struct spool_reader *r)
{
	struct spool *s = r->spool;
	const struct seg *seg;
	uint64_t limit;
	ssize_t i;

	pthread_mutex_lock(&s->lock);
	i = find_seg(s, r->pos);
	if (i < 0) {
		uint64_t first = s->segs[0].start;

		pthread_mutex_unlock(&s->lock);
		if (!r->quiet)
			log_err("spool: a reader at position %" PRIu64
				" is before the first segment"
				" (%" PRIu64 "): the bytes in between were deleted unread",
				r->pos, first);
		reset(r, first);
		return;
	}
	seg = &s->segs[i];
	limit = (size_t)i + 1 < s->nsegs ? s->segs[i + 1].start : UINT64_MAX;
	if (limit != UINT64_MAX && r->pos >= seg->start + seg->len) {
		pthread_mutex_unlock(&s->lock);
		reset(r, limit);
		return;
	}
	r->have_seg = 1;
	r->seg_start = seg->start;
	r->seg_gen = seg->gen;
	r->limit = limit;
	r->de = seg->start + seg->len < limit ? seg->start + seg->len : limit;
	r->missing_end = 0;
	pthread_mutex_unlock(&s->lock);
}

/* A duplicate of the descriptor of the reader's segment (to be closed
 * after the read), with r->limit and r->de brought up to date. Returns
 * the descriptor, -ENOENT when the segment is no longer in the spool
 * (released or recreated: the reader forgets it and finds its position
 * again), or another negative errno. */
static int
seg_dup(struct spool_reader *r)
{
	struct spool *s = r->spool;
	ssize_t i;
	int fd = -ENOENT;

	pthread_mutex_lock(&s->lock);
	i = find_seg(s, r->seg_start);
	if (i >= 0 && s->segs[i].start == r->seg_start && s->segs[i].gen == r->seg_gen) {
		const struct seg *seg = &s->segs[i];

		r->limit = (size_t)i + 1 < s->nsegs ? s->segs[i + 1].start : UINT64_MAX;
		r->de = seg->start + seg->len < r->limit ? seg->start + seg->len : r->limit;
		fd = fcntl(seg->fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			fd = -errno;
	}
	pthread_mutex_unlock(&s->lock);
	return fd;
}

/* Reads more of the segment: as much as the buffer holds, and at least
 * `need` bytes from r->pos when the data end allows. Returns 0, 1 when the
 * segment is no longer in the spool (released or recreated: the caller
 * finds its position again), or a negative errno. */
static int
fill(struct spool_reader *r, size_t need)
{
	uint64_t have_end;
	int fd = seg_dup(r), err = 0;

	if (fd == -ENOENT) {
		r->have_seg = 0;
		r->off = r->len = 0;
		r->scanning = 0;
		return 1;
	}
	if (fd < 0)
		return fd;
	r->missing_end = 0;
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->pos < r->de && need > r->de - r->pos)
		need = (size_t)(r->de - r->pos);
	if (need > r->cap) {
		uint8_t *nb = realloc(r->buf, need);

		if (!nb) {
			close(fd);
			return -ENOMEM;
		}
		r->buf = nb;
		r->cap = need;
	}
	have_end = r->pos + r->len;
	while (have_end < r->de && r->len < r->cap) {
		size_t want = r->cap - r->len;
		ssize_t n;

		if (want > r->de - have_end)
			want = (size_t)(r->de - have_end);
		n = pread(fd, r->buf + r->len, want, (off_t)(have_end - r->seg_start));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0) {
			/* The file is shorter than the spool says (cut under
			 * us): the bytes up to de are missing. */
			r->missing_end = r->de;
			r->de = have_end;
			break;
		}
		r->len += (size_t)n;
		have_end += (size_t)n;
		if (r->len >= need)
			break;
	}
	close(fd);
	return err;
}

/* Counts (once per span, whichever reader finds it first) and logs a
 * damaged span. */
static void
note_damage(struct spool_reader *r, uint64_t from, uint64_t to)
{
	struct spool *s = r->spool;
	int counted = 0;

	if (r->quiet)
		return;
	pthread_mutex_lock(&s->lock);
	if (from >= s->damage_mark) {
		s->damage_mark = to;
		counted = 1;
	}
	pthread_mutex_unlock(&s->lock);
	if (!counted)
		return;
	atomic_fetch_add(&s->damaged_spans, 1);
	atomic_fetch_add(&s->damaged_bytes, to - from);
	log_limited(&s->damage_rl, LOG_LEVEL_ERR,
		    "spool: damaged data at position %" PRIu64 " (segment %020" PRIu64 SEG_SUFFIX
		    ", offset %" PRIu64 "): %" PRIu64 " bytes skipped, whole records again from"
		    " position %" PRIu64 "; the records in them are lost (cordond stores the bytes"
		    " in rejects as spool_corrupt)",
		    from, r->seg_start, from - r->seg_start, to - from, to);
}

/* Hands up the damaged span from r->span_start to `to`, with its first
 * bytes as payload. Returns 1, or a negative errno. */
static int
emit_span(struct spool_reader *r, uint64_t to, struct spool_record *ret)
{
	uint64_t len = to - r->span_start;
	size_t keep = len < SPOOL_DAMAGE_KEEP ? (size_t)len : SPOOL_DAMAGE_KEEP, got = 0;
	int fd;

	if (!r->span && !(r->span = malloc(SPOOL_DAMAGE_KEEP)))
		return -ENOMEM;
	fd = seg_dup(r);
	while (fd >= 0 && got < keep) {
		ssize_t n = pread(fd, r->span + got, keep - got,
				  (off_t)(r->span_start + got - r->seg_start));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the bytes are missing: a shorter payload */
		got += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	memset(ret, 0, sizeof(*ret));
	ret->pos = r->span_start;
	ret->next = to;
	ret->flags = SPOOL_DAMAGED;
	ret->orig_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	ret->topic = "";
	ret->payload = r->span;
	ret->payload_len = got;
	r->scanning = 0;
	note_damage(r, r->span_start, to);
	return 1;
}

static void
start_scan(struct spool_reader *r)
{
	r->scanning = 1;
	r->span_start = r->pos;
	advance(r, 1);
}

/* Looks for the next whole record with a valid checksum after the damage
 * that began at r->span_start, up to the segment's data end. Returns 1
 * with the damaged span in *ret, 0 to be called again (the segment went
 * away), or a negative errno. */
static int
scan(struct spool_reader *r, struct spool_record *ret)
{
	for (;;) {
		size_t avail = r->len - r->off, need;
		const uint8_t *p = avail >= sizeof(magic_bytes) ?
			memmem(r->buf + r->off, avail, magic_bytes, sizeof(magic_bytes)) :
			NULL;
		int err;

		if (p) {
			size_t size;

			advance(r, (size_t)(p - (r->buf + r->off)));
			avail = r->len - r->off;
			size = avail >= SPOOL_HEADER_SIZE ? header_size(p) : 0;
			if (avail >= SPOOL_HEADER_SIZE && size == 0) {
				advance(r, 1);
				continue;
			}
			if (size && size <= avail) {
				if (record_valid(p, size))
					return emit_span(r, r->pos, ret);
				advance(r, 1);
				continue;
			}
			need = size ? size : SPOOL_HEADER_SIZE;
		} else {
			/* Keep the last 3 bytes: a magic may begin there. */
			if (avail > sizeof(magic_bytes) - 1)
				advance(r, avail - (sizeof(magic_bytes) - 1));
			need = r->len - r->off + 1;
		}
		err = fill(r, need);
		if (err < 0)
			return err;
		if (err > 0)
			return 0;
		if (r->len - r->off >= need)
			continue;
		if (p) {
			/* This candidate cannot be whole before the data end. */
			advance(r, 1);
			continue;
		}
		/* Nothing whole up to the data end: below the end every record
		 * is whole, so the next one (if any) starts right there. */
		{
			uint64_t to = r->pos + (r->len - r->off);

			r->off = r->len = 0;
			r->pos = to;
			return emit_span(r, to, ret);
		}
	}
}

int
spool_reader_next(struct spool_reader *r, struct spool_record *ret)
{
	for (;;) {
		size_t avail = r->len - r->off, need;
		int err;

		if (!r->have_seg) {
			open_seg(r);
			continue;
		}
		if (r->scanning) {
			err = scan(r, ret);
			if (err != 0)
				return err;
			continue;
		}
		if (avail >= SPOOL_HEADER_SIZE) {
			const uint8_t *h = r->buf + r->off;
			size_t size = header_size(h);

			if (size == 0) {
				start_scan(r);
				continue;
			}
			if (size <= avail) {
				size_t tlen;

				if (!record_valid(h, size)) {
					start_scan(r);
					continue;
				}
				tlen = get_u16(h + 12);
				ret->pos = r->pos;
				ret->next = r->pos + size;
				ret->payload_len = get_u32(h + 4);
				ret->orig_len = get_u32(h + 8);
				ret->flags = get_u16(h + 14) &
					(SPOOL_TRUNCATED | SPOOL_RETAINED | SPOOL_SOURCE_MASK);
				ret->recv_us = (int64_t)get_u64(h + 16);
				ret->topic = (const char *)h + SPOOL_HEADER_SIZE;
				ret->topic_len = tlen;
				ret->payload = h + SPOOL_HEADER_SIZE + tlen;
				advance(r, size);
				return 1;
			}
			need = size;
		} else {
			need = SPOOL_HEADER_SIZE;
		}
		err = fill(r, need);
		if (err < 0)
			return err;
		if (err > 0 || r->len - r->off >= need)
			continue;
		/* Not a whole record before the data end. Below the end every
		 * record is whole: what is there is damage. */
		if (r->len > r->off) {
			start_scan(r);
			continue;
		}
		if (r->missing_end > r->pos) {
			/* Bytes the file no longer has: a span with no payload. */
			r->span_start = r->pos;
			r->pos = r->missing_end;
			r->missing_end = 0;
			return emit_span(r, r->pos, ret);
		}
		if (r->limit == UINT64_MAX)
			return 0; /* the segment being written: nothing more yet */
		/* A finished segment, read to its end: on to the next, over
		 * the gap a cut tail left if there is one. */
		reset(r, r->limit);
	}
}

void
spool_set_limits(struct spool *spool, int64_t max_bytes, enum spool_sync_mode sync)
{
	pthread_mutex_lock(&spool->lock);
	spool->opt.max_bytes = max_bytes;
	spool->opt.sync = sync;
	pthread_mutex_unlock(&spool->lock);
}
