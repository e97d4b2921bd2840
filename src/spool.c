/* spool.c - append-only segment files with length + checksum framing.
 *
 * Record layout (little endian), 32-byte header then topic then payload:
 *   0  u32 magic "CSR1"       4  u32 payload_len (as stored)
 *   8  u32 orig_len           12 u16 topic_len   14 u16 flags
 *   16 i64 recv_us            24 u64 XXH3-64 of bytes 0..23, topic, payload
 * The writer (Paho's callback thread) appends with one writev() under a
 * mutex and then publishes the new end position; readers (the main loop)
 * only read below that position, so they always see whole records. */
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
#include <sys/uio.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "log.h"

#define MAGIC 0x31525343u	/* "CSR1" */
#define MAX_STORED_PAYLOAD (16u << 20)
/* Bounds of what one segment can hold: the largest segment_bytes the
 * configuration allows, plus one record of the largest kind. */
#define SPOOL_MAX_SEGMENT (1ull << 30)
#define SPOOL_MAX_RECORD (SPOOL_HEADER_SIZE + 65535ull + MAX_STORED_PAYLOAD)
#define SEG_SUFFIX ".seg"

struct spool {
	char *dir;
	struct spool_options opt;
	char id[33];
	int dir_fd;

	pthread_mutex_t lock;	/* segs, nsegs, fd, seg_len */
	uint64_t *segs;		/* start positions, ascending */
	size_t nsegs, cap;
	int fd;			/* last segment, open for append */
	uint64_t seg_len;	/* bytes in the last segment */
	uint64_t closed_bytes;	/* bytes in the segments before it */
	_Atomic uint64_t end;
	_Atomic uint64_t first;

	_Atomic uint64_t corrupt;
	uint64_t torn_bytes;
};

struct spool_reader {
	struct spool *spool;
	uint64_t pos;		/* position of buf[off] */
	int fd;
	uint64_t seg_start;	/* of the open segment, when fd >= 0 */
	uint8_t *buf;
	size_t cap, off, len;	/* valid bytes: buf[off..len) */
	int resyncing;		/* skipping bytes after a corrupt record */
};

static void
seg_path(const struct spool *spool, uint64_t start, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%020" PRIu64 SEG_SUFFIX, spool->dir, start);
}

static void
put_u16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void
put_u32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void
put_u64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t
get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t
get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t
get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

static uint64_t
record_checksum(const uint8_t *hdr, const void *topic, size_t topic_len,
		const void *payload, size_t payload_len)
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

	if (get_u32(hdr) != MAGIC || plen > MAX_STORED_PAYLOAD ||
	    get_u32(hdr + 8) < plen)
		return 0;
	return SPOOL_HEADER_SIZE + get_u16(hdr + 12) + (size_t)plen;
}

static int
record_valid(const uint8_t *rec, size_t size)
{
	size_t tlen = get_u16(rec + 12);

	return record_checksum(rec, rec + SPOOL_HEADER_SIZE, tlen,
			       rec + SPOOL_HEADER_SIZE + tlen,
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

/* Writes `data` to dir/name through a temporary file and rename(2). */
static int
write_file_atomic(struct spool *spool, const char *name, const char *data, int sync)
{
	char tmp[4096], dst[4096];
	size_t len = strlen(data);
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", spool->dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", spool->dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	if (!err && sync && fdatasync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, dst) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	else if (sync)
		fsync(spool->dir_fd);
	return err;
}

static int
load_or_create_id(struct spool *spool)
{
	char path[4096], buf[64];
	uint8_t raw[16];
	FILE *f;

	snprintf(path, sizeof(path), "%s/spool.id", spool->dir);
	f = fopen(path, "re");
	if (f) {
		int ok = fgets(buf, sizeof(buf), f) && strlen(buf) >= 32;

		fclose(f);
		if (ok) {
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
	return write_file_atomic(spool, "spool.id", buf, 1);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
push_seg(struct spool *spool, uint64_t start)
{
	if (spool->nsegs == spool->cap) {
		size_t cap = spool->cap ? spool->cap * 2 : 16;
		uint64_t *segs = realloc(spool->segs, cap * sizeof(*segs));

		if (!segs)
			return -ENOMEM;
		spool->segs = segs;
		spool->cap = cap;
	}
	spool->segs[spool->nsegs++] = start;
	return 0;
}

static int
list_segments(struct spool *spool)
{
	DIR *d = opendir(spool->dir);
	struct dirent *de;
	int err = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char *end;
		uint64_t start;

		if (strlen(de->d_name) != 20 + strlen(SEG_SUFFIX) ||
		    strcmp(de->d_name + 20, SEG_SUFFIX) != 0)
			continue;
		start = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + 20)
			continue;
		err = push_seg(spool, start);
		if (err)
			break;
	}
	closedir(d);
	if (!err && spool->nsegs > 1)
		qsort(spool->segs, spool->nsegs, sizeof(uint64_t), cmp_u64);
	return err;
}

/* Scans the last segment and cuts it at the first bad record; returns the
 * number of valid bytes in it. */
static int
recover_last(struct spool *spool, uint64_t *ret_len)
{
	uint64_t start = spool->segs[spool->nsegs - 1];
	char path[4096];
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t off = 0;
	int fd, err = 0;

	seg_path(spool, start, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	for (;;) {
		uint8_t hdr[SPOOL_HEADER_SIZE];
		size_t size;

		if ((uint64_t)st.st_size - off < SPOOL_HEADER_SIZE)
			break;
		if (pread(fd, hdr, sizeof(hdr), (off_t)off) != sizeof(hdr))
			break;
		size = header_size(hdr);
		if (size == 0 || (uint64_t)st.st_size - off < size)
			break;
		if (size > cap) {
			uint8_t *nb = realloc(buf, size);

			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = size;
		}
		if (pread(fd, buf, size, (off_t)off) != (ssize_t)size || !record_valid(buf, size))
			break;
		off += size;
	}
	if (off < (uint64_t)st.st_size) {
		spool->torn_bytes = (uint64_t)st.st_size - off;
		log_warn("spool: torn or corrupt tail in %s at offset %" PRIu64
			 ": %" PRIu64 " bytes dropped (the broker redelivers what was not acknowledged)",
			 path, off, spool->torn_bytes);
		if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
			err = -errno;
			goto out;
		}
	}
	*ret_len = off;
out:
	free(buf);
	close(fd);
	return err;
}

static int
open_segment_for_append(struct spool *spool, uint64_t start, int create)
{
	char path[4096];
	int fd;

	seg_path(spool, start, path, sizeof(path));
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0640);
	if (fd < 0)
		return -errno;
	if (create && fsync(spool->dir_fd) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	spool->fd = fd;
	return 0;
}

int
spool_open(const struct spool_options *opt, struct spool **ret_spool)
{
	struct spool *spool;
	uint64_t len = 0;
	int err;

	spool = calloc(1, sizeof(*spool));
	if (!spool)
		return -ENOMEM;
	spool->fd = -1;
	spool->dir_fd = -1;
	pthread_mutex_init(&spool->lock, NULL);
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
	if (spool->dir_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = load_or_create_id(spool);
	if (err)
		goto fail;
	err = list_segments(spool);
	if (err)
		goto fail;
	if (spool->nsegs == 0) {
		uint64_t start = spool_load_checkpoint(spool);

		err = push_seg(spool, start);
		if (!err)
			err = open_segment_for_append(spool, start, 1);
	} else {
		err = recover_last(spool, &len);
		if (!err && spool->torn_bytes) {
			/* Positions are never reused: a checkpoint may already
			 * name a position inside the part that was cut - even
			 * beyond what the torn file still shows (committed before
			 * a power loss tore it on disk). So new records start in
			 * a new segment beyond anything the old one can ever have
			 * held: a segment never grows past the largest segment
			 * size plus one record. Readers step over the gap. */
			uint64_t start = spool->segs[spool->nsegs - 1];
			uint64_t held = len + spool->torn_bytes;
			uint64_t next = start + (held > SPOOL_MAX_SEGMENT ? held : SPOOL_MAX_SEGMENT) +
					SPOOL_MAX_RECORD;

			err = push_seg(spool, next);
			if (!err)
				err = open_segment_for_append(spool, next, 1);
			len = 0;
		} else if (!err) {
			err = open_segment_for_append(spool, spool->segs[spool->nsegs - 1], 0);
		}
	}
	if (err)
		goto fail;
	for (size_t i = 0; i + 1 < spool->nsegs; i++) {
		char path[4096];
		struct stat st;

		seg_path(spool, spool->segs[i], path, sizeof(path));
		if (stat(path, &st) == 0)
			spool->closed_bytes += (uint64_t)st.st_size;
	}
	spool->seg_len = len;
	spool->end = spool->segs[spool->nsegs - 1] + len;
	spool->first = spool->segs[0];
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
	if (spool->fd >= 0) {
		if (spool->opt.sync != SPOOL_SYNC_OFF)
			fdatasync(spool->fd);
		close(spool->fd);
	}
	if (spool->dir_fd >= 0)
		close(spool->dir_fd);
	pthread_mutex_destroy(&spool->lock);
	free(spool->segs);
	free(spool->dir);
	free(spool);
}

/* Starts a new segment at the current end; called with the lock held. */
static int
rotate(struct spool *spool)
{
	uint64_t start = spool->end;
	int old = spool->fd, err;

	if (spool->opt.sync != SPOOL_SYNC_OFF && fdatasync(old) < 0)
		return -errno;
	err = push_seg(spool, start);
	if (err)
		return err;
	err = open_segment_for_append(spool, start, 1);
	if (err) {
		spool->nsegs--;
		spool->fd = old;
		return err;
	}
	close(old);
	spool->closed_bytes += spool->seg_len;
	spool->seg_len = 0;
	return 0;
}

int
spool_append(struct spool *spool, const char *topic, size_t topic_len,
	     const void *payload, size_t payload_len, int64_t recv_us)
{
	uint8_t hdr[SPOOL_HEADER_SIZE];
	size_t stored = payload_len, size, done = 0;
	struct iovec iov[3];
	int err = 0;

	if (topic_len > UINT16_MAX)
		return -EMSGSIZE;
	if (stored > (size_t)spool->opt.max_payload)
		stored = (size_t)spool->opt.max_payload;
	size = SPOOL_HEADER_SIZE + topic_len + stored;

	put_u32(hdr, MAGIC);
	put_u32(hdr + 4, (uint32_t)stored);
	put_u32(hdr + 8, payload_len > UINT32_MAX ? UINT32_MAX : (uint32_t)payload_len);
	put_u16(hdr + 12, (uint16_t)topic_len);
	put_u16(hdr + 14, stored < payload_len ? SPOOL_TRUNCATED : 0);
	put_u64(hdr + 16, (uint64_t)recv_us);
	put_u64(hdr + 24, record_checksum(hdr, topic, topic_len, payload, stored));
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)topic, topic_len };
	iov[2] = (struct iovec){ (void *)payload, stored };

	pthread_mutex_lock(&spool->lock);
	if (spool->closed_bytes + spool->seg_len + size > (uint64_t)spool->opt.max_bytes) {
		err = -ENOSPC;
		goto out;
	}
	if (spool->seg_len > 0 && spool->seg_len + size > (uint64_t)spool->opt.segment_bytes) {
		err = rotate(spool);
		if (err)
			goto out;
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
		w = writev(spool->fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		done += (size_t)w;
	}
	if (err) {
		/* Leave no partial record behind. */
		if (done && ftruncate(spool->fd, (off_t)spool->seg_len) < 0)
			log_err("spool: cannot cut a partial record: %s", strerror(errno));
		goto out;
	}
	if (spool->opt.sync == SPOOL_SYNC_ALWAYS && fdatasync(spool->fd) < 0) {
		err = -errno;
		goto out;
	}
	spool->seg_len += size;
	atomic_store_explicit(&spool->end, spool->end + size, memory_order_release);
out:
	pthread_mutex_unlock(&spool->lock);
	return err;
}

int
spool_sync(struct spool *spool)
{
	int fd, err = 0;

	pthread_mutex_lock(&spool->lock);
	fd = dup(spool->fd);
	pthread_mutex_unlock(&spool->lock);
	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		err = -errno;
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
	n = spool->closed_bytes + spool->seg_len;
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
	ret_stats->corrupt = atomic_load(&spool->corrupt);
}

void
spool_release(struct spool *spool, uint64_t pos)
{
	pthread_mutex_lock(&spool->lock);
	while (spool->nsegs > 1 && spool->segs[1] <= pos) {
		char path[4096];

		struct stat st;

		seg_path(spool, spool->segs[0], path, sizeof(path));
		if (stat(path, &st) == 0 && (uint64_t)st.st_size <= spool->closed_bytes)
			spool->closed_bytes -= (uint64_t)st.st_size;
		if (unlink(path) < 0 && errno != ENOENT) {
			log_warn("spool: cannot delete %s: %s", path, strerror(errno));
			break;
		}
		memmove(spool->segs, spool->segs + 1, (spool->nsegs - 1) * sizeof(uint64_t));
		spool->nsegs--;
		atomic_store(&spool->first, spool->segs[0]);
	}
	pthread_mutex_unlock(&spool->lock);
}

uint64_t
spool_load_checkpoint(struct spool *spool)
{
	char path[4096], id[64];
	unsigned long long pos;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/checkpoint", spool->dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	ok = fscanf(f, "%63s %llu", id, &pos) == 2 && strcmp(id, spool->id) == 0;
	fclose(f);
	return ok ? pos : 0;
}

int
spool_save_checkpoint(struct spool *spool, uint64_t pos)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%s %" PRIu64 "\n", spool->id, pos);
	return write_file_atomic(spool, "checkpoint", buf, 0);
}

int
spool_reader_create(struct spool *spool, uint64_t pos, struct spool_reader **ret_reader)
{
	struct spool_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->cap = 1u << 20;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return -ENOMEM;
	}
	r->spool = spool;
	r->fd = -1;
	r->pos = pos;
	*ret_reader = r;
	return 0;
}

void
spool_reader_destroy(struct spool_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	free(r);
}

uint64_t
spool_reader_pos(const struct spool_reader *r)
{
	return r->pos;
}

void
spool_reader_seek(struct spool_reader *r, uint64_t pos)
{
	if (pos == r->pos)
		return;
	r->pos = pos;
	r->off = r->len = 0;
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}

/* Finds the segment holding `pos`: its start and the next one's start
 * (UINT64_MAX for the last). Returns -ENOENT if pos is before the first. */
static int
locate(struct spool *spool, uint64_t pos, uint64_t *ret_start, uint64_t *ret_limit)
{
	int err = -ENOENT;

	pthread_mutex_lock(&spool->lock);
	for (size_t i = spool->nsegs; i-- > 0;) {
		if (spool->segs[i] <= pos) {
			*ret_start = spool->segs[i];
			*ret_limit = i + 1 < spool->nsegs ? spool->segs[i + 1] : UINT64_MAX;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&spool->lock);
	return err;
}

static void
skip_to(struct spool_reader *r, uint64_t pos, const char *why)
{
	atomic_fetch_add(&r->spool->corrupt, 1);
	log_err("spool: %s at position %" PRIu64 "; skipping to %" PRIu64,
		why, r->pos, pos);
	spool_reader_seek(r, pos);
}

/* A segment that ends before the next one starts: the gap left when a
 * torn tail was cut at open. Nothing is lost by stepping over it. */
static void
step_over_gap(struct spool_reader *r, uint64_t pos)
{
	log_info("spool: stepping over the gap %" PRIu64 "..%" PRIu64 " left by a cut tail",
		 r->pos, pos);
	spool_reader_seek(r, pos);
}

int
spool_reader_next(struct spool_reader *r, struct spool_record *ret)
{
	for (;;) {
		size_t avail = r->len - r->off;
		uint64_t end = spool_end(r->spool), seg_start, limit = UINT64_MAX, want;
		ssize_t n;

		if (avail >= SPOOL_HEADER_SIZE) {
			const uint8_t *h = r->buf + r->off;
			size_t size = header_size(h);

			/* Every record that starts below the end lies wholly below
			 * it (the end moves only past whole records): a header
			 * that claims more is corrupt, not a record in flight. */
			if (size == 0 || (size <= avail && !record_valid(h, size)) ||
			    r->pos + size > end) {
				if (locate(r->spool, r->pos, &seg_start, &limit) == 0 &&
				    limit != UINT64_MAX) {
					skip_to(r, limit, "corrupt record");
					continue;
				}
				/* In the segment being written: look for the next
				 * whole record byte by byte (said once). */
				if (!r->resyncing) {
					atomic_fetch_add(&r->spool->corrupt, 1);
					log_err("spool: corrupt record at position %" PRIu64
						"; looking for the next whole record", r->pos);
				}
				r->resyncing = 1;
				r->off++;
				r->pos++;
				continue;
			}
			if (r->resyncing && size <= avail) {
				log_notice("spool: records again from position %" PRIu64, r->pos);
				r->resyncing = 0;
			}
			if (size <= avail) {
				size_t tlen = get_u16(h + 12);

				ret->pos = r->pos;
				ret->next = r->pos + size;
				ret->payload_len = get_u32(h + 4);
				ret->orig_len = get_u32(h + 8);
				ret->flags = get_u16(h + 14);
				ret->recv_us = (int64_t)get_u64(h + 16);
				ret->topic = (const char *)h + SPOOL_HEADER_SIZE;
				ret->topic_len = tlen;
				ret->payload = h + SPOOL_HEADER_SIZE + tlen;
				r->off += size;
				r->pos += size;
				return 1;
			}
			if (size > r->cap) {
				uint8_t *nb = malloc(size);

				if (!nb)
					return -ENOMEM;
				memcpy(nb, r->buf + r->off, avail);
				free(r->buf);
				r->buf = nb;
				r->cap = size;
				r->off = 0;
				r->len = avail;
			}
		}
		if (r->fd < 0) {
			char path[4096];

			if (locate(r->spool, r->pos, &seg_start, &limit) < 0) {
				uint64_t first = spool_first(r->spool);

				skip_to(r, first, "position before the first segment");
				continue;
			}
			seg_path(r->spool, seg_start, path, sizeof(path));
			r->fd = open(path, O_RDONLY | O_CLOEXEC);
			if (r->fd < 0)
				return -errno;
			r->seg_start = seg_start;
		}
		if (locate(r->spool, r->seg_start, &seg_start, &limit) < 0 ||
		    seg_start != r->seg_start) {
			/* Our segment was deleted under us (all of it was
			 * committed, the reader sat at its end): find the
			 * segment of our position again. */
			close(r->fd);
			r->fd = -1;
			continue;
		}
		if (r->pos + avail >= limit) {
			if (avail == 0) {
				/* This segment is done: move to the next. */
				close(r->fd);
				r->fd = -1;
				continue;
			}
			skip_to(r, limit, "truncated record at segment end");
			continue;
		}
		/* Only now: a partial record at the end of a finished segment
		 * may reach exactly to `end` (when the next segment is empty). */
		if (r->pos + avail >= end)
			return 0;
		if (r->off > 0) {
			memmove(r->buf, r->buf + r->off, avail);
			r->off = 0;
			r->len = avail;
		}
		want = r->cap - r->len;
		if (want > (limit < end ? limit : end) - (r->pos + avail))
			want = (limit < end ? limit : end) - (r->pos + avail);
		n = pread(r->fd, r->buf + r->len, want, (off_t)(r->pos + avail - r->seg_start));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (limit == UINT64_MAX)
				return 0;
			if (avail == 0)
				step_over_gap(r, limit);
			else
				skip_to(r, limit, "truncated record at segment end");
			continue;
		}
		r->len += (size_t)n;
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
