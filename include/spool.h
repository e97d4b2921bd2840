/* spool.h - the local, append-only, checksummed message spool
 *
 * Every message the broker delivers is appended here before it is
 * acknowledged. Positions are byte offsets in one logical stream that is
 * cut into segment files; each segment file is named after the position
 * of its first byte. A record: 32-byte header, topic, payload.
 *
 * Every segment file stays open from its creation until it is released,
 * and every file operation is relative to the directory opened at start:
 * a file deleted under a running cordond (a careless rm -rf) still reads,
 * and nothing is ever written into a directory that replaced ours. */
#ifndef CORDON_SPOOL_H
#define CORDON_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_HEADER_SIZE 32
#define SPOOL_TRUNCATED 0x1 /* payload cut at max_payload */
/* Not a message: damaged bytes the reader skipped (a span from `pos` to
 * `next`). Its payload is the span's first bytes (at most
 * SPOOL_DAMAGE_KEEP), orig_len its length, the topic empty, recv_us 0.
 * Each such span held at least one record, now lost. */
#define SPOOL_DAMAGED 0x2
#define SPOOL_DAMAGE_KEEP 65536
/* The broker delivered it with RETAIN set: with Retain As Published, a
 * retained publication or a retained message sent at a SUBSCRIBE
 * (replay.h). */
#define SPOOL_RETAINED 0x4
/* Which shard session took the message (docs/scaling.md): the shard + 1 in
 * bits 7 to 15 of the flags (SPOOL_SOURCE(shard)); 0, as in every record
 * of an instance not clustered or written before, says none. */
#define SPOOL_SOURCE_SHIFT 7
#define SPOOL_SOURCE_MASK (0x1FFu << SPOOL_SOURCE_SHIFT)
#define SPOOL_SOURCE(shard) (((unsigned)(shard) + 1) << SPOOL_SOURCE_SHIFT)
/* The shard of a record's flags, or -1 when none is said. */
#define SPOOL_SOURCE_SHARD(flags) ((int)(((flags)&SPOOL_SOURCE_MASK) >> SPOOL_SOURCE_SHIFT) - 1)

struct spool;
struct spool_reader;

/* When appended bytes reach the disk ([spool] sync). */
enum spool_sync_mode {
	SPOOL_SYNC_OFF,
	SPOOL_SYNC_INTERVAL,
	SPOOL_SYNC_ALWAYS,
};

struct spool_options {
	const char *dir;
	int64_t max_bytes;
	int64_t segment_bytes;
	int64_t max_payload;
	enum spool_sync_mode sync;
};

struct spool_record {
	uint64_t pos;	   /* position of the record */
	uint64_t next;	   /* position just after it */
	int64_t recv_us;   /* receive time, microseconds since the epoch */
	uint32_t orig_len; /* payload length as received */
	uint32_t flags;	   /* SPOOL_TRUNCATED, SPOOL_DAMAGED, SPOOL_RETAINED, source */
	const char *topic; /* not NUL-terminated */
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
};

struct spool_stats {
	uint64_t torn_bytes;	/* cut from a torn tail at open */
	uint64_t damaged_spans; /* damaged spans readers skipped (each once) */
	uint64_t damaged_bytes; /* their bytes */
	uint64_t syncs;		/* fdatasyncs of segment data (sync = interval or always) */
};

/* What became of the spool directory while we run (spool_check_dir()). */
enum spool_dir_state {
	SPOOL_DIR_OK,
	SPOOL_DIR_DELETED,  /* the directory, or the segment being written, was deleted */
	SPOOL_DIR_REPLACED, /* the path names another directory (a remount) */
};

/* Opens (creating if needed) the spool in opt->dir and recovers it: the
 * last segment is checked record by record. Damaged bytes followed by
 * whole records are kept (readers skip them, as SPOOL_DAMAGED spans); a
 * torn tail (an incomplete last record, nothing whole after it) is cut,
 * and new records then start in a new segment beyond a gap of positions
 * (positions are never reused). Returns 0 or a negative errno (-EMFILE:
 * one descriptor per segment file is needed). */
int spool_open(const struct spool_options *opt, struct spool **ret_spool)
	__attribute__((warn_unused_result));
void spool_close(struct spool *spool);

/* Appends one message with record flags (SPOOL_RETAINED and the source
 * bits; others are ignored), which the readers hand back in spool_record.flags;
 * thread-safe. Returns 0, -ENOSPC when the spool is
 * at max_bytes (the caller must not acknowledge the message), -EMSGSIZE for
 * a topic over 65535 bytes, -ENOENT or -ESTALE while the directory is
 * deleted or replaced (spool_check_dir()), or another negative errno on I/O
 * failure (the segment is left as it was before the call; see
 * spool_write_error()). The append checks, after writing and at most
 * once a millisecond, that the segment file is still linked: one deleted
 * under us fails the append (what was appended to it before still reads
 * through the open descriptor). */
int spool_append_flags(struct spool *spool, const char *topic, size_t topic_len,
		       const void *payload, size_t payload_len, int64_t recv_us, unsigned flags)
	__attribute__((warn_unused_result));

/* 0, or the negative errno of the last append that failed on I/O
 * (-ENOSPC, -EDQUOT, -EIO, -EFBIG ...: not the max_bytes limit); cleared
 * by the next append that succeeds. */
int spool_write_error(struct spool *spool);

/* Checks that the directory is still the one we opened (its path names
 * the same inode, which is not deleted) and that the segment being
 * written is still linked. Once not SPOOL_DIR_OK, stays so (and every
 * append fails) until spool_recreate(). Cheap: three stat calls. */
enum spool_dir_state spool_check_dir(struct spool *spool);

/* After the directory was deleted or replaced, and once everything in the
 * spool is committed (spool_pending(spool, committed) == 0): makes the
 * directory again (or takes the one now at the path, if it holds no spool)
 * with the same spool id, a new segment at the current end (positions go
 * on) and the checkpoint `committed`. Returns 0 (also when there was
 * nothing to do), -EBUSY while bytes are not committed, -EEXIST when the
 * path names a directory holding another spool, or another negative errno. */
int spool_recreate(struct spool *spool, uint64_t committed) __attribute__((warn_unused_result));

/* Changes max_bytes and the sync mode of an open spool (SIGHUP). */
void spool_set_limits(struct spool *spool, int64_t max_bytes, enum spool_sync_mode sync);

/* fdatasync of what has been appended so far (sync = interval). */
int spool_sync(struct spool *spool) __attribute__((warn_unused_result));

uint64_t spool_end(struct spool *spool);   /* after the last whole record */
uint64_t spool_first(struct spool *spool); /* first retained position */
/* Bytes in the segment files (positions may have gaps: never subtract
 * positions to size the spool). */
uint64_t spool_bytes(struct spool *spool);
/* Bytes of the segment files at positions from `pos` on: what is not yet
 * committed when `pos` is the committed position. */
uint64_t spool_pending(struct spool *spool, uint64_t pos);
/* Of spool_pending(spool, pos), the bytes in files that are deleted:
 * readable only as long as the spool is open. */
uint64_t spool_pending_deleted(struct spool *spool, uint64_t pos);
const char *spool_id(struct spool *spool); /* random, fixed at creation */
void spool_get_stats(struct spool *spool, struct spool_stats *ret_stats);

/* Deletes the segment files that lie wholly before `pos`. When everything
 * is before `pos` (committed) and the segment being written holds a
 * quarter of segment_bytes or a sixteenth of its file system, or appends
 * fail (spool_write_error()), that segment is closed, a new one started
 * and the old one deleted too: the disk may be smaller than one segment.
 * Call it after each commit and now and then (the last commit may come
 * before the disk fills). */
void spool_release(struct spool *spool, uint64_t pos);
/* While `low` is 1 (intake paused because the spool's disk is nearly
 * full), spool_release() also replaces and deletes a segment being written
 * that is all committed whatever its size, as when appends fail. */
void spool_set_low_disk(struct spool *spool, int low);

/* The last position known committed to PostgreSQL, as saved locally by
 * spool_save_checkpoint(); 0 when there is none. A lower bound: the
 * database's checkpoint may be further on. */
uint64_t spool_load_checkpoint(struct spool *spool);
/* Returns 0 or a negative errno (-ENOENT while the directory is deleted). */
int spool_save_checkpoint(struct spool *spool, uint64_t pos) __attribute__((warn_unused_result));

/* The bytes of a payload of `len` the spool keeps (max_payload cuts it). */
size_t spool_stored_len(const struct spool *spool, size_t len);
/* Side files of other modules (replay.c's memory, pktid.c's table): a
 * `name` is "file" in the spool directory or "subdir/file" in a
 * subdirectory of it (one level; one shard session's files, made 0750 by
 * a write or an open when missing; -EINVAL for a name of more levels).
 *
 * Writes `name` atomically (a temporary file beside it, fdatasync,
 * rename, fsync of its directory). Returns 0 or a negative errno
 * (-ENOENT while the directory is deleted). */
int spool_write_file(struct spool *spool, const char *name, const void *buf, size_t len)
	__attribute__((warn_unused_result));
/* Opens (creating, mode 0640) the side file `name` for reading and
 * writing; returns the descriptor or a negative errno. */
int spool_open_file(struct spool *spool, const char *name) __attribute__((warn_unused_result));
/* Reads the whole of side file `name` (at most `max` bytes, else -EFBIG)
 * into a malloc'ed buffer. Returns 0, -ENOENT when there is none, or another
 * negative errno. */
int spool_read_file(struct spool *spool, const char *name, size_t max, void **ret_buf,
		    size_t *ret_len) __attribute__((warn_unused_result));

int spool_reader_create(struct spool *spool, uint64_t pos, struct spool_reader **ret_reader)
	__attribute__((warn_unused_result));
void spool_reader_destroy(struct spool_reader *reader);
/* Reads the next record. Returns 1 with *ret_record filled (valid until
 * the next call), 0 when nothing more is there yet, or a negative errno.
 * Damaged bytes come as one SPOOL_DAMAGED record per span: the reader
 * looks for the next whole record with a valid checksum and goes on from
 * there, so only the damaged records are lost. */
int spool_reader_next(struct spool_reader *reader, struct spool_record *ret_record)
	__attribute__((warn_unused_result));
uint64_t spool_reader_pos(const struct spool_reader *reader);
void spool_reader_seek(struct spool_reader *reader, uint64_t pos);

#endif
