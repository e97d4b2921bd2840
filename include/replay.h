/* replay.h - each topic's retained payload as cordond last saw it: tells
 * a retained message the broker sends again at a SUBSCRIBE from a new
 * retained publication.
 *
 * cordond subscribes with Retain As Published (MQTT 5.0 section 3.8.3.1),
 * so RETAIN on a delivery says the publisher retained it; and with Retain
 * Handling 1, so the broker sends the retained messages at a SUBSCRIBE
 * only for a new subscription (a session the broker lost or never had).
 * A RETAIN delivery is a replay when its payload is the topic's retained
 * payload as last noted; any other is new and becomes it. (Redeliveries,
 * DUP, are pktid.h's.)
 *
 * Bounded: at most max_topics topics, the least recently noted dropped
 * first; 40 bytes a topic at most. Not thread-safe: the caller locks. */
#ifndef CORDON_REPLAY_H
#define CORDON_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define REPLAY_DEPTH 1		     /* payloads remembered per topic: the retained one */
#define REPLAY_MAX_TOPICS (1u << 18) /* 262,144 topics: 10 MiB at most */

struct replay;

struct replay_stats {
	uint64_t topics;  /* topics remembered now */
	uint64_t evicted; /* topics dropped to stay within max_topics */
};

/* Returns 0 or -ENOMEM; max_topics >= 1. Memory grows with use. */
int replay_create(uint32_t max_topics, struct replay **ret_replay)
	__attribute__((warn_unused_result));
void replay_destroy(struct replay *r);

/* The 64-bit hashes the memory keys on (XXH3): of a topic, and of a
 * payload as the spool stores it (its first stored_len bytes) together
 * with its length as received (orig_len), so that a payload cut at
 * max_payload hashes the same at receipt and when read back. */
uint64_t replay_topic_hash(const char *topic, size_t len);
uint64_t replay_payload_hash(const void *payload, size_t stored_len, size_t orig_len);

/* 1 when `payload` is among the topic's last REPLAY_DEPTH distinct
 * payloads noted (with REPLAY_DEPTH 1: its retained payload), else 0. */
int replay_seen(const struct replay *r, uint64_t topic, uint64_t payload);
/* Notes a delivery: the payload becomes the topic's latest (moved up if
 * it was there), the topic the most recently delivered. Returns 0 or
 * -ENOMEM (nothing changed). */
int replay_note(struct replay *r, uint64_t topic, uint64_t payload)
	__attribute__((warn_unused_result));
void replay_get_stats(const struct replay *r, struct replay_stats *ret_stats);
/* Copies `src` into *dst (made at the first call, NULL before; kept for
 * the next, so that its pages are not faulted in again) for
 * replay_save() only: the copy cannot look up or note. One memcpy, so
 * that a lock around `src` is held briefly. Returns 0 or -ENOMEM. Free
 * the copy with replay_destroy(). */
int replay_copy(struct replay **dst, const struct replay *src) __attribute__((warn_unused_result));

/* Writes the memory, as of spool position `pos` (everything before it
 * noted, nothing after), into a malloc'ed buffer: the 48-byte header
 * "CRP1", version, spool id (32 bytes), pos; then per topic, the least
 * recently noted first, 8 * (2 + REPLAY_DEPTH) bytes (topic hash, count,
 * REPLAY_DEPTH payload hashes, latest first); then an XXH3-64 of all that. Returns 0
 * or -ENOMEM. */
int replay_save(const struct replay *r, const char *spool_id, uint64_t pos, void **ret_buf,
		size_t *ret_len) __attribute__((warn_unused_result));
/* Replaces the memory with what replay_save() wrote and sets *ret_pos.
 * Returns 0, -EINVAL when the bytes do not check (damaged, cut, another
 * version), -ESTALE when they belong to another spool, or -ENOMEM; on
 * error the memory is left empty. */
int replay_load(struct replay *r, const void *buf, size_t len, const char *spool_id,
		uint64_t *ret_pos) __attribute__((warn_unused_result));

#endif
