/* mqtt_subs.h - one MQTT client's inbound subscriptions: a set of sites,
 * each with every inbound filter of topics.c (TOPIC_NINBOUND of them) with
 * the site in place of the site's `+` (`cordon/S1/gate/+/event`, ...), and
 * each filter's SUBACK on the current connection.
 *
 * The site "+" stands for every site: its filters are the wildcard
 * filters of topics_filter() (one instance alone, [cluster] shards = 0).
 * A shard session (docs/scaling.md) holds its shard's sites, hundreds of
 * them in a city; the set is replaced whole at each change of the
 * register (mqtt_subs_set()), which says what to SUBSCRIBE and what to
 * UNSUBSCRIBE. Sites are kept sorted (strcmp), one allocation each, at
 * most MQTT_SUBS_MAX_SITES.
 *
 * Pure: no Paho, no lock, no I/O, no log (mqtt_client.c holds a lock
 * around every call and makes the Paho calls). */
#ifndef CORDON_MQTT_SUBS_H
#define CORDON_MQTT_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topics.h"

/* Filters of one site at most: the inbound kinds, and the hand-over
 * marker's (TOPIC_HANDOVER) with `handover` (mqtt_subs_create()). */
#define MQTT_SUBS_MAX_KINDS (TOPIC_NINBOUND + 1)

/* Sites one client subscribes to at most: 65,536 × 9 filters (a city of
 * 10,000 sites fits one shard). A set over it keeps the first ones in
 * strcmp order, and mqtt_subs_set() says how many it left out. */
#define MQTT_SUBS_MAX_SITES 65536
/* Filters in one SUBSCRIBE or UNSUBSCRIBE at most (whole sites: 11 of 9
 * filters each). */
#define MQTT_SUBS_REQUEST_FILTERS 100
/* A filter's SUBACK while none has come on this connection. */
#define MQTT_SUBS_PENDING (-1)

/* A list of site names: one allocation (free() it), the names after the
 * pointers. */
struct mqtt_subs_list {
	size_t n;
	char **names;
};

/* A list of the `n` names in `names` (copied) as one allocation.
 * Returns 0 or -ENOMEM (*ret_list untouched but for n). */
int mqtt_subs_list_make(const char *const *names, size_t n, struct mqtt_subs_list *ret_list)
	__attribute__((warn_unused_result));

struct mqtt_subs_counts {
	int granted;	/* at QoS 1, as asked */
	int downgraded; /* at QoS 0 */
	int refused;	/* a reason code 0x80 and up */
	int pending;	/* no SUBACK yet on this connection */
	/* The first refused filter and its code (-1: none refused). */
	char first_refused[256];
	int first_refused_code;
};

struct mqtt_subs;

/* An empty set for topics under `root` (copied). Each site has the
 * TOPIC_NINBOUND inbound filters and, with `handover` (clustered with
 * [cluster] discovery: handover.h), the marker's <root>/<site>/_handover
 * after them. Returns 0 or -ENOMEM. */
int mqtt_subs_create(const char *root, bool handover, struct mqtt_subs **ret_subs)
	__attribute__((warn_unused_result));
/* Filters per site: TOPIC_NINBOUND, or one more with `handover`. */
int mqtt_subs_kinds(const struct mqtt_subs *s);
void mqtt_subs_destroy(struct mqtt_subs *s);
/* Whether `site` can be subscribed to under `root`: "+" (every site), or
 * a topic level (not empty, no `+`, `#` or `/`) whose longest filter fits
 * in TOPIC_MAX_BYTES. */
int mqtt_subs_site_ok(const char *root, const char *site);
/* Replaces the set with `sites` (n names, any order, duplicates and
 * sites that fail mqtt_subs_site_ok() left out, and beyond
 * MQTT_SUBS_MAX_SITES). Sites kept keep their SUBACK codes; new ones are
 * MQTT_SUBS_PENDING. *ret_added and *ret_removed (NULL: not wanted) list
 * what changed, in strcmp order: what to SUBSCRIBE and to UNSUBSCRIBE;
 * *ret_skipped (NULL: not wanted) counts the names left out. Returns 0,
 * or -ENOMEM (the set is as it was, nothing returned). */
int mqtt_subs_set(struct mqtt_subs *s, const char *const *sites, size_t n,
		  struct mqtt_subs_list *ret_added, struct mqtt_subs_list *ret_removed,
		  size_t *ret_skipped) __attribute__((warn_unused_result));
/* Sites in the set. */
size_t mqtt_subs_sites(const struct mqtt_subs *s);
/* Every site of the set as a list (to SUBSCRIBE at a connect). Returns 0
 * or -ENOMEM. */
int mqtt_subs_all(const struct mqtt_subs *s, struct mqtt_subs_list *ret_list)
	__attribute__((warn_unused_result));
/* A new connection: every code MQTT_SUBS_PENDING, and the generation
 * grows (SUBACKs of an older connection are ignored). */
void mqtt_subs_reset(struct mqtt_subs *s);
uint64_t mqtt_subs_generation(const struct mqtt_subs *s);
/* The SUBACK of one SUBSCRIBE of connection `generation`, for the
 * `nsites` sites in `sites` (each with its mqtt_subs_kinds() filters, in
 * topic kind order): codes[i] for filter i, `ncodes` of them (fewer: the
 * rest unspecified error, 0x80). Sites no longer in the set, and an old
 * generation, are skipped. */
void mqtt_subs_suback(struct mqtt_subs *s, uint64_t generation, const char *const *sites,
		      size_t nsites, const int *codes, size_t ncodes);
/* Whether `site` is in the set with every filter granted on this
 * connection (at any QoS): none pending, none refused. O(log sites). */
bool mqtt_subs_site_granted(const struct mqtt_subs *s, const char *site);
/* Counts the filters by SUBACK outcome. O(filters). */
void mqtt_subs_count(const struct mqtt_subs *s, struct mqtt_subs_counts *ret_counts);
/* Filters in the set: mqtt_subs_sites() × mqtt_subs_kinds(). */
size_t mqtt_subs_filters(const struct mqtt_subs *s);
/* Writes filter number i into buf (site i / kinds, filter i % kinds,
 * kinds = mqtt_subs_kinds()) and its code in *ret_code. Returns its length, or -1
 * when i is out of range or it does not fit. */
int mqtt_subs_filter(const struct mqtt_subs *s, size_t i, char *buf, size_t len, int *ret_code);
/* Writes the filter number `k` (< mqtt_subs_kinds(): the inbound kind k,
 * or the marker's) of `site` into buf; the length, or -1 when it does not
 * fit. */
int mqtt_subs_build(const struct mqtt_subs *s, const char *site, int k, char *buf, size_t len);
/* What the SUBACKs changed since the last call, for the log: calls
 * fn(arg, filter, code, was) for each filter whose code is no longer the
 * one last told (was: that code, MQTT_SUBS_PENDING the first time; a
 * code still pending, and a first grant at the QoS asked, are not news),
 * at most `max` times, and marks every change told. Returns how many changes fn was not called for. Skips the
 * walk when no SUBACK came since the last call. */
size_t mqtt_subs_news(struct mqtt_subs *s,
		      void (*fn)(void *arg, const char *filter, int code, int was), void *arg,
		      size_t max);

#endif
