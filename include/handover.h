/* handover.h - a shard session's intake gate: which session's stream a
 * site's messages are taken from (docs/scaling.md, "Sites nobody
 * registered, and the hand-over").
 *
 * Clustered with [cluster] discovery on, shard 0's session subscribes to
 * every site (the wildcard filters, and <root>/+/_handover): it serves the
 * sites no other shard serves, those nobody registered and the registered
 * ones whose hand-over is not done. Shard s's session (s != 0) subscribes
 * to its registered sites' filters, each with <root>/<site>/_handover. A
 * registered site X of shard s != 0 is handed from shard 0's stream to
 * shard s's at a marker: a message on <root>/X/_handover, which shard s's
 * owner publishes once its session is subscribed to X (and once PostgreSQL
 * holds that a marker may have been sent: HANDOVER_SENT). The broker puts
 * the marker in both sessions' queues at one point of X's stream: the
 * DISCOVERY gate passes X's messages before it and drops those after; the
 * SHARD gate drops those before and passes those after. Each message of X
 * is spooled by exactly one of the two (one broker; across a clustered
 * broker's nodes, up to the nodes' own ordering).
 *
 * What is not known is passed, never dropped: a gate that cannot tell
 * whether its stream passed the marker (an instance killed between its
 * cut and PostgreSQL recording it) passes X, so a crash doubles a few of
 * X's messages (stored once: event keys; judged once: shards.h) and never
 * loses one.
 *
 * States of a site in a gate:
 *   DISCOVERY gate: PASS until a marker of X, then DROP.
 *   SHARD gate: HOLD (drop) until a marker of X, then PASS.
 * Sites not in the gate: DISCOVERY passes them (nobody registered them,
 * or they are of shard 0); SHARD passes them (a site the session is still
 * subscribed to while it leaves: its messages are not dropped).
 * A marker is never spooled: handover_gate() says HANDOVER_DROP for it.
 *
 * Threads: handover_gate() runs on Paho's receive thread, everything else
 * on the main loop; a mutex inside orders them. One gate per shard
 * session; it outlives nothing (the session frees it after its client). */
#ifndef CORDON_HANDOVER_H
#define CORDON_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_subs.h" /* struct mqtt_subs_list */

/* A site's hand-over as PostgreSQL holds it (table site_handovers; the
 * register snapshot's reg_site.handover). */
#define HANDOVER_SENT 0x1 /* a marker of the site may have been published */
#define HANDOVER_DISCOVERY_CUT \
	0x2 /* shard 0's stream passed a marker, and what came
				    * before it is committed */

/* The last topic level of a marker: <root>/<site>/_handover. */
#define HANDOVER_LEVEL "_handover"

enum handover_role {
	HANDOVER_DISCOVERY, /* shard 0's session, subscribed to every site */
	HANDOVER_SHARD,	    /* shard s's session (s != 0), subscribed to its sites */
};

enum handover_verdict {
	HANDOVER_PASS, /* spool it */
	HANDOVER_DROP, /* acknowledge it without spooling: the other stream has it,
			* or it is a marker */
};

/* One site as the main loop hands it to handover_set_sites(). */
struct handover_site {
	const char *site; /* NUL-terminated; copied */
	unsigned flags;	  /* HANDOVER_SENT, HANDOVER_DISCOVERY_CUT */
};

/* A cut the DISCOVERY gate made: site X's marker came at spool position
 * `end` (spool_end() just before the gate returned; what came before it
 * is below). PostgreSQL is to record HANDOVER_DISCOVERY_CUT once the
 * store has committed up to `end`. */
struct handover_cut {
	char site[65]; /* NUL-terminated; sites are at most 64 bytes */
	uint64_t end;
};

struct handover_stats {
	uint64_t passed;  /* messages passed (not markers) */
	uint64_t dropped; /* messages dropped (not markers) */
	uint64_t markers; /* markers seen (each dropped) */
	uint64_t cuts;	  /* markers that moved a cut */
	size_t sites;	  /* sites in the gate */
	size_t holding;	  /* SHARD: sites still dropping until their marker */
	size_t dropping;  /* DISCOVERY: sites cut (dropped) */
};

struct handover;

/* A gate for topics under `root` (copied; the [mqtt] topic_root). `end_fn`
 * (with end_ctx) gives the spool's end position for a cut (spool_end()
 * of the daemon's spool): called under the gate's lock on Paho's thread.
 * Returns 0, -EINVAL (root empty or over 200 bytes), -ENOMEM. */
int handover_create(const char *root, enum handover_role role, uint64_t (*end_fn)(void *end_ctx),
		    void *end_ctx, struct handover **ret_gate) __attribute__((warn_unused_result));
/* Accepts NULL. */
void handover_destroy(struct handover *h);

/* The main loop: the sites the gate is about now, any order, duplicates
 * allowed (the first counts). DISCOVERY: every registered site of a
 * shard other than 0. SHARD: the registered sites of its shard.
 *   - A site new to the gate starts, DISCOVERY: DROP when its flags have
 *     HANDOVER_DISCOVERY_CUT, else PASS; SHARD: PASS when its flags have
 *     HANDOVER_SENT (done, or not known: see above), else HOLD, and it is
 *     listed in *ret_to_send (NULL: not wanted), in strcmp order: the
 *     caller records HANDOVER_SENT in PostgreSQL before publishing any
 *     marker of it.
 *   - A site the gate has keeps its state whatever its flags say (the
 *     gate knows better than a snapshot that may be older), except a
 *     DISCOVERY site in PASS whose flags now have HANDOVER_DISCOVERY_CUT
 *     (another owner of shard 0 made the cut): DROP; and a site whose
 *     flags the gate saw with its settling step (DISCOVERY:
 *     HANDOVER_DISCOVERY_CUT; SHARD: HANDOVER_SENT) and now without it:
 *     its row went with the site, registered again (in one snapshot, or
 *     in one this gate missed), and it is handed over again: DISCOVERY
 *     back to PASS; SHARD stays as it is (it cannot tell whether shard
 *     0's gate still drops the site) and is listed in *ret_to_send.
 *   - A site left out is forgotten (passed from now on).
 * Returns 0, or -ENOMEM (the gate as it was, nothing returned). */
int handover_set_sites(struct handover *h, const struct handover_site *sites, size_t n,
		       struct mqtt_subs_list *ret_to_send) __attribute__((warn_unused_result));

/* Paho's receive thread: what to do with a message on `topic` (topic_len
 * bytes, not NUL-terminated). A marker (<root>/<site>/_handover) is always
 * HANDOVER_DROP; one that moves a cut (DISCOVERY: a site in PASS that is
 * in the gate; SHARD: a site in HOLD) moves it, and a DISCOVERY cut is
 * queued for handover_next_cut(). Another topic: by its site's state (a
 * topic with no site under root: HANDOVER_PASS). Never blocks but on the
 * gate's lock; never allocates but for a DISCOVERY cut's queue entry
 * (out of memory: no cut, the site stays in PASS until a later marker:
 * its messages are spooled by both streams meanwhile, never by none). */
enum handover_verdict handover_gate(struct handover *h, const char *topic, size_t topic_len);

/* The main loop: the oldest DISCOVERY cut not taken yet; false when none. */
bool handover_next_cut(struct handover *h, struct handover_cut *ret_cut);

/* Whether `site` is in HOLD (SHARD), for the markers to publish. */
bool handover_is_holding(struct handover *h, const char *site);

void handover_get_stats(struct handover *h, struct handover_stats *ret_stats);

#endif
