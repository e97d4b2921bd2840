/* store.h - PostgreSQL: migrations, batched idempotent writes with the
 * spool checkpoint in the same transaction, reconnect with backoff.
 *
 * The store runs its own thread and owns every PGconn: the main loop hands
 * it one batch at a time and is told through an eventfd when the batch is
 * committed, so a slow or absent database never stalls the main loop. */
#ifndef CORDON_STORE_H
#define CORDON_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "alert_state.h"
#include "normalize.h"

struct store;

struct store_reject {
	char key[NORM_KEY_MAX + 8]; /* message hash, or "row:" + event key */
	int64_t received_us;
	const char *reason; /* static */
	char detail[128];
	char *topic;	  /* malloc'ed */
	uint8_t *payload; /* malloc'ed */
	size_t payload_len;
	size_t orig_len;
};

/* An alert transition to store in alerts and alert_transitions, with the
 * fencing token of a clustered instance (docs/scaling.md, "Fencing"): the
 * shard of its site and the epoch of the lease the rules held when they
 * made it. A row whose epoch is older than the shard's in shard_leases
 * when the batch commits is not written. shard -1: not fenced (one
 * instance, or an instance-level alert). */
struct store_alert {
	struct alert_transition t;
	int shard;
	int64_t epoch;
};

struct store_batch {
	struct event *events;
	size_t nevents, cap;
	struct store_reject *rejects;
	size_t nrejects, rcap;
	struct store_alert *alerts;
	size_t nalerts, acap;
	uint64_t end_pos; /* spool position just after the last record */
};

struct store_options {
	const char *conninfo;
	const char *instance; /* the checkpoint's owner */
	const char *spool_id;
	const char *topic_root; /* for the topic of a row turned reject */
};

#include "metrics.h"

#define STORE_SQLSTATES_MAX 16 /* distinct SQLSTATEs counted; the rest as "other" */
#define STORE_REASON_MAX 200

/* How often writes failed with one SQLSTATE ("" when PostgreSQL sent none). */
struct store_error_count {
	char sqlstate[6];
	uint64_t count;
};

struct store_stats {
	uint64_t rows_by_type[EVENT_TYPES + 1]; /* events written, by enum event_type */
	/* Events stored under a derived key because their device had used
	 * their record id for other content (sql/0006), by enum event_type. */
	uint64_t reused_by_type[EVENT_TYPES + 1];
	struct histogram batch_rows;	/* rows per committed batch */
	struct histogram batch_seconds; /* time to write and commit a batch */
	int db_up;
	uint64_t batches;
	uint64_t events_written; /* rows handed to PostgreSQL */
	uint64_t rejects_written;
	uint64_t db_checkpoint; /* as read at connect (0 if other spool) */
	int have_db_checkpoint;
	uint64_t connect_attempts; /* connections tried, successful or not */
	/* 1 while PostgreSQL is reachable but refuses our writes for a reason
	 * that is not the data (privilege, schema, timeout, read-only, ...):
	 * the batch is held and retried. Why: */
	int writes_held;
	char held_sqlstate[6];
	char held_reason[STORE_REASON_MAX]; /* "message (step)" */
	/* Failed write attempts by SQLSTATE: each attempt of a held batch,
	 * and each row refused for its data. */
	struct store_error_count write_errors[STORE_SQLSTATES_MAX];
	size_t nwrite_errors;
	uint64_t write_errors_other; /* SQLSTATEs beyond the first STORE_SQLSTATES_MAX */
	uint64_t rows_rejected;	     /* event rows turned store_failed rejects */
	/* Alert rows not written: their shard's epoch had moved on (another
	 * instance took it over; docs/scaling.md, "Fencing"). */
	uint64_t alert_rows_fenced;
};

/* Starts the store thread; it connects in the background. `done_fd` is an
 * eventfd written when a batch is committed. */
int store_create(const struct store_options *opt, int done_fd, struct store **ret_store)
	__attribute__((warn_unused_result));
/* Stops the thread (an unfinished batch is abandoned: it stays in the
 * spool) and closes the connection. */
void store_destroy(struct store *store);

/* Hands `batch` to the store; returns -EBUSY while another is in flight. */
int store_submit(struct store *store, struct store_batch *batch)
	__attribute__((warn_unused_result));
/* Takes back a committed batch: returns it, or NULL when none is done. */
struct store_batch *store_take_done(struct store *store);
void store_get_stats(struct store *store, struct store_stats *ret_stats);
/* Appends the store's own metrics (connection attempts, held writes,
 * write errors by SQLSTATE, rows turned rejects) as Prometheus text to a
 * memstream. */
void store_stats_print(const struct store_stats *stats, void *stream);
/* PostgreSQL's state for a status line: "up", "down" or "refusing writes". */
const char *store_stats_db_text(const struct store_stats *stats);

int store_batch_add_event(struct store_batch *b, const struct event *ev)
	__attribute__((warn_unused_result));
int store_batch_add_reject(struct store_batch *b, const struct store_reject *r, const char *topic,
			   size_t topic_len, const uint8_t *payload, size_t len)
	__attribute__((warn_unused_result));
/* Adds transition `t` to write; `shard` and `epoch` as in struct
 * store_alert (-1 and 0: not fenced). 0 or -ENOMEM. */
int store_batch_add_alert(struct store_batch *b, const struct alert_transition *t, int shard,
			  int64_t epoch) __attribute__((warn_unused_result));
void store_batch_clear(struct store_batch *b);
void store_batch_free(struct store_batch *b);
size_t store_batch_rows(const struct store_batch *b);

#endif
