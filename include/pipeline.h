/* pipeline.h - from the spool to the rules and to PostgreSQL.
 *
 * Two cursors read the spool. The rules cursor normalizes every record
 * once, runs the rules and publishes alerts at once (alerts never wait for
 * PostgreSQL). The same normalized events go into the batch being filled
 * for the store. When the store falls behind (PostgreSQL down or slow)
 * and the batch is full, the store cursor stops where it is and later
 * catches up on its own, normalizing again, while the rules cursor goes on.
 * The pipeline also holds the register snapshot the normalizer and the
 * rules read, with the site defaults of the configuration applied. */
#ifndef CORDON_PIPELINE_H
#define CORDON_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "map.h"
#include "normalize.h"
#include "rules.h"

struct publisher;
struct registry;
struct registry_snapshot;
struct shards;
struct spool;
struct spool_reader;
struct store;
struct store_batch;
struct syncer;

struct pipeline_counts {
	uint64_t events;
	uint64_t rejects;
	uint64_t retained_cleared;	   /* empty retained messages: no data */
	uint64_t by_type[EVENT_TYPES + 1]; /* events normalized, by type */
	struct map reject_reasons;	   /* reason -> count (intptr) */
	/* Messages of sites of shards another instance owns, stored without
	 * the rules (clustered). */
	uint64_t not_judged;
};

/* Embedded in the daemon. The pointers under "wiring" are the daemon's
 * objects, set by it before the first pipeline_pump(). */
struct pipeline {
	const struct config *cfg;
	/* wiring */
	struct spool *spool;
	struct store *store;
	struct registry *registry; /* told the [site] timezone on a reload */
	struct publisher *pub;
	struct syncer *syncer; /* what the replay memory's file covers */
	struct rules *rules;
	struct rules_output *out;
	/* Clustered: the shards this instance acts for (shards.h); NULL: every
	 * site is judged. */
	struct shards *shards;

	struct spool_reader *rules_rd; /* ahead: rules and alerts */
	struct spool_reader *store_rd; /* catch-up when the store lags */
	uint64_t store_pos;	       /* records before this are in a batch */
	uint64_t committed;	       /* in PostgreSQL */
	struct store_batch *batches[2];
	struct store_batch *filling;
	size_t batch_rows;
	uint64_t nrecords;		  /* records the rules cursor has read */
	int rules_ready;		  /* rule state restored, or given up on */
	struct store_batch *reseed_batch; /* once committed: the next restore pass */
	int reseed_due;			  /* ... once the outbound queue has drained */

	struct norm_context nctx;
	struct rules_config rcfg;      /* for rules_create() and every reload */
	struct registry_snapshot *reg; /* the register as the rules see it */
	size_t reg_bytes;	       /* registry_snapshot_bytes(reg), counted when taken */
	char site_tz[64];	       /* [site] timezone as told to the register thread */
	struct event *events;
	struct pipeline_counts count;
	/* Clustered: the shard the rules cursor waits for (-1: none), why,
	 * since when (CLOCK_MONOTONIC ms); the log of records not judged. */
	int wait_shard;
	int wait_why;
	int64_t wait_since_ms;
	struct log_ratelimit not_judged_rl;
};

/* Allocates the buffers and an empty register in `cfg`'s [site] timezone;
 * 0, -ENOMEM, or -EINVAL (an unknown zone). */
int pipeline_init(struct pipeline *pl, const struct config *cfg, const uint8_t *id_key,
		  size_t id_key_len) __attribute__((warn_unused_result));
/* Opens both cursors at the local checkpoint; 0 or -errno. */
int pipeline_open(struct pipeline *pl, struct spool *spool) __attribute__((warn_unused_result));
void pipeline_finish(struct pipeline *pl);
/* The configuration in force (at start and after a reload): normalizer
 * settings, the rules' configuration, batch size, and the [site]
 * timezone for the snapshot in use, the register thread and every
 * snapshot taken later (pipeline_set_register). */
void pipeline_reconfigure(struct pipeline *pl, const struct config *cfg);
/* [site] timezone into snapshot `s`, for its sites without a zone of their
 * own (one loaded before a reload may still carry the old one). */
void pipeline_apply_timezone(struct pipeline *pl, struct registry_snapshot *s);
/* Makes `s` the register in use (frees the old one). */
void pipeline_set_register(struct pipeline *pl, struct registry_snapshot *s);
/* One pass: a committed batch taken back, new records through the rules,
 * the store cursor caught up, the filling batch handed to an idle store. */
void pipeline_pump(struct pipeline *pl);
/* Deletes the spool segments wholly before the committed position and
 * what the replay memory's file covers. */
void pipeline_release(struct pipeline *pl);
/* Spool bytes not yet in PostgreSQL. */
uint64_t pipeline_pending(const struct pipeline *pl);
/* Whether the rules cursor has read all that is appended. */
bool pipeline_is_caught_up(const struct pipeline *pl);
/* Whether the rules cursor waits before a record of a shard this
 * instance owns but may not act on yet (its rule state loading, its lease
 * unsure): polling the spool will not move it, a change of the lease view
 * (or a seed restored) will. */
bool pipeline_is_waiting(const struct pipeline *pl);

#endif
