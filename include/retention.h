/* retention.h - removing old event rows ([site] retention_days, SPEC 5).
 *
 * A thread of its own with its own PostgreSQL connection (why not the
 * store's or the register's: src/retention.c, docs/architecture.md)
 * removes the event rows whose device time (`ts`) is older than
 * retention_days, and the folded rows that are over (resolved alerts and
 * hotline calls, delivered or cancelled needs), in batches of at most
 * RETENTION_BATCH rows, each its own short transaction. It runs soon after
 * start, then every RETENTION_PERIOD_MS, and at once after a reload
 * (retention_reconfigure). The register, open alerts, open calls and open
 * needs (with their steps) are never removed. */
#ifndef CORDON_RETENTION_H
#define CORDON_RETENTION_H

#include <stdint.h>

/* Rows one statement removes at most (one table, one transaction). */
#define RETENTION_BATCH 5000
/* Between two runs, in milliseconds: hourly. */
#define RETENTION_PERIOD_MS (3600 * 1000)

/* The tables the thread removes rows from, in the order of a run; the
 * index is what retention_removed() takes. */
#define RETENTION_TABLES 19

struct retention;

/* Starts the thread: it connects with `conninfo` (retrying with a capped
 * backoff while PostgreSQL is away) and makes its first run once the
 * store has migrated the schema, then one every RETENTION_PERIOD_MS.
 * `days`: rows older than this many days go; 0 keeps everything (the
 * thread then only waits). Returns 0 or a negative errno (-ENOMEM, or
 * pthread_create's error). */
int retention_create(const char *conninfo, int64_t days, struct retention **ret)
	__attribute__((warn_unused_result));
/* Stops the thread (within one batch) and frees it. Accepts NULL. */
void retention_destroy(struct retention *r);
/* A reload: the new number of days, and a run at once (also when the
 * number did not change). Any thread. */
void retention_reconfigure(struct retention *r, int64_t days);

/* For the metrics (any thread): the name of table i (0 <= i <
 * RETENTION_TABLES), the rows removed from it since start, and the runs
 * finished (a run that failed part-way counts in failures, not runs). */
const char *retention_table(int i);
uint64_t retention_removed(const struct retention *r, int i);
uint64_t retention_runs(const struct retention *r);
uint64_t retention_failures(const struct retention *r);

#endif
