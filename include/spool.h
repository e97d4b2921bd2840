/* spool.h - the local, append-only, checksummed message spool
 *
 * Every message the broker delivers is appended here before it is
 * acknowledged. Positions are byte offsets in one logical stream that is
 * cut into segment files; each segment file is named after the position
 * of its first byte. A record: 32-byte header, topic, payload. */
#ifndef CORDON_SPOOL_H
#define CORDON_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SPOOL_HEADER_SIZE 32
#define SPOOL_TRUNCATED 0x1	/* payload cut at max_payload */

struct spool;
struct spool_reader;

struct spool_options {
	const char *dir;
	int64_t max_bytes;
	int64_t segment_bytes;
	int64_t max_payload;
	enum spool_sync_mode sync;
};

struct spool_record {
	uint64_t pos;		/* position of the record */
	uint64_t next;		/* position just after it */
	int64_t recv_us;	/* receive time, microseconds since the epoch */
	uint32_t orig_len;	/* payload length as received */
	uint32_t flags;		/* SPOOL_TRUNCATED */
	const char *topic;	/* not NUL-terminated */
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
};

struct spool_stats {
	uint64_t torn_bytes;	/* dropped from a torn tail at open */
	uint64_t corrupt;	/* records skipped by readers as corrupt */
};

/* Opens (creating if needed) the spool in opt->dir and recovers it: the
 * last segment is checked record by record and cut at the first torn or
 * corrupt record. */
int spool_open(const struct spool_options *opt, struct spool **ret_spool)
	__attribute__((warn_unused_result));
void spool_close(struct spool *spool);

/* Appends one message; thread-safe. Returns 0, -ENOSPC when the spool is
 * at max_bytes (the caller must not acknowledge the message), -EMSGSIZE for
 * a topic over 65535 bytes, or another negative errno on I/O failure (the
 * segment is left as it was before the call). */
int spool_append(struct spool *spool, const char *topic, size_t topic_len,
		 const void *payload, size_t payload_len, int64_t recv_us)
	__attribute__((warn_unused_result));

/* Changes max_bytes and the sync mode of an open spool (SIGHUP). */
void spool_set_limits(struct spool *spool, int64_t max_bytes, enum spool_sync_mode sync);

/* fdatasync of what has been appended so far (sync = interval). */
int spool_sync(struct spool *spool) __attribute__((warn_unused_result));

uint64_t spool_end(struct spool *spool);	/* after the last whole record */
uint64_t spool_first(struct spool *spool);	/* first retained position */
/* Bytes in the segment files (positions may have gaps: never subtract
 * positions to size the spool). */
uint64_t spool_bytes(struct spool *spool);
const char *spool_id(struct spool *spool);	/* random, fixed at creation */
void spool_get_stats(struct spool *spool, struct spool_stats *ret_stats);

/* Deletes the segment files that lie wholly before `pos` (never the
 * segment being written). */
void spool_release(struct spool *spool, uint64_t pos);

/* The last position known committed to PostgreSQL, as saved locally by
 * spool_save_checkpoint(); 0 when there is none. A lower bound: the
 * database's checkpoint may be further on. */
uint64_t spool_load_checkpoint(struct spool *spool);
int spool_save_checkpoint(struct spool *spool, uint64_t pos)
	__attribute__((warn_unused_result));

int spool_reader_create(struct spool *spool, uint64_t pos,
			struct spool_reader **ret_reader)
	__attribute__((warn_unused_result));
void spool_reader_destroy(struct spool_reader *reader);
/* Reads the next record. Returns 1 with *ret_record filled (valid until
 * the next call), 0 when nothing more is there yet, or a negative errno. */
int spool_reader_next(struct spool_reader *reader, struct spool_record *ret_record)
	__attribute__((warn_unused_result));
uint64_t spool_reader_pos(const struct spool_reader *reader);
void spool_reader_seek(struct spool_reader *reader, uint64_t pos);

#endif
