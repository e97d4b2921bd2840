/* handover.c - a shard session's intake gate: per site PASS, DROP or HOLD,
 * moved by markers (handover.h).
 *
 * The sites are a map (map.h) from a site's name to one byte of `states`,
 * an array of the gate's sites' states. Which sites the map holds changes
 * only in handover_set_sites(), on the main loop, which builds the next map
 * and array beside the current ones and swaps them in under the lock; the
 * bytes change under the lock (handover_gate() on Paho's thread, the swap).
 * So the main loop may read the map itself without the lock (it is the
 * only writer), and reads a state only under it.
 *
 * handover_gate() per message: the site level found by hand in the topic
 * (no allocation: copied to the stack, a site is at most 64 bytes), then
 * one map lookup under the lock. */
#include "handover.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

#define ROOT_MAX 200
#define SITE_MAX 64 /* sites are at most 64 bytes (struct handover_cut) */
_Static_assert(sizeof(((struct handover_cut){ 0 }).site) == SITE_MAX + 1, "a cut holds a site");

/* A site's state in the gate; 0 is no state (not in the gate). */
enum state {
	ST_PASS = 1, /* spool its messages */
	ST_DROP,     /* DISCOVERY: cut, the shard's stream has its messages */
	ST_HOLD,     /* SHARD: drop until its marker */
};

struct cut_entry {
	struct cut_entry *next;
	struct handover_cut cut;
};

struct handover {
	pthread_mutex_t lock;
	enum handover_role role;
	char *root;
	size_t root_len;
	uint64_t (*end_fn)(void *end_ctx);
	void *end_ctx;
	/* The sites: name -> a byte of `states` (enum state). */
	struct map sites;
	unsigned char *states;
	/* Beside `states`, the same index (main loop only: no lock): the
	 * site's row in PostgreSQL was seen with the step that settles the
	 * gate (DISCOVERY: HANDOVER_DISCOVERY_CUT; SHARD: HANDOVER_SENT). A
	 * snapshot without it after that says the row was removed with the
	 * site, and the site registered again (handover_set_sites()). */
	unsigned char *seen;
	/* The DISCOVERY cuts not taken yet, oldest first. Bounded: a cut is a
	 * site's move from PASS to DROP, which happens once while the site is
	 * in the gate (DROP never goes back to PASS); only a site removed and
	 * added again can be cut again. So the queue holds at most one entry
	 * per site in the gate, plus one per site that left the gate with its
	 * cut not taken yet (kept: the cut was made, PostgreSQL is to learn
	 * it); the main loop takes them every turn. */
	struct cut_entry *head, **tail;
	/* Under the lock; sites, holding and dropping kept current. */
	struct handover_stats stats;
};

int
handover_create(const char *root, enum handover_role role, uint64_t (*end_fn)(void *end_ctx),
		void *end_ctx, struct handover **ret_gate)
{
	struct handover *h;
	size_t len = root ? strlen(root) : 0;

	if (len == 0 || len > ROOT_MAX)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	if (!(h->root = strdup(root)) || pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h->root);
		free(h);
		return -ENOMEM;
	}
	h->root_len = len;
	h->role = role;
	h->end_fn = end_fn;
	h->end_ctx = end_ctx;
	map_init(&h->sites);
	h->tail = &h->head;
	*ret_gate = h;
	return 0;
}

void
handover_destroy(struct handover *h)
{
	struct cut_entry *e, *next;

	if (!h)
		return;
	for (e = h->head; e; e = next) {
		next = e->next;
		free(e);
	}
	map_finish(&h->sites, NULL);
	free(h->states);
	free(h->seen);
	free(h->root);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Whether `site` can be a topic level a gate matches: 1 to 64 bytes (a
 * cut's site), no `/`, and no `+` or `#` (no topic published has them,
 * and a marker's topic is built from it). */
static bool
is_site_ok(const char *site)
{
	size_t len = strlen(site);

	return len > 0 && len <= SITE_MAX && !strpbrk(site, "/+#");
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A site of the next map that the gate has now: its state now, and
 * whether its flags say HANDOVER_DISCOVERY_CUT; or whether its row was
 * seen settled and is not any more (`gone`: DISCOVERY, back to PASS). */
struct kept {
	const unsigned char *from;
	bool cut;
	bool gone;
};

int
handover_set_sites(struct handover *h, const struct handover_site *sites, size_t n,
		   struct mqtt_subs_list *ret_to_send)
{
	struct map next, old;
	unsigned char *states, *old_states, *seen, *old_seen;
	struct kept *kept;
	const char **send = NULL;
	struct mqtt_subs_list list = { 0 };
	size_t nnext = 0, nsend = 0, holding = 0, dropping = 0;

	map_init(&next);
	states = malloc(n ? n : 1);
	seen = malloc(n ? n : 1);
	kept = malloc((n ? n : 1) * sizeof(*kept));
	if (ret_to_send)
		send = malloc((n ? n : 1) * sizeof(*send));
	if (!states || !seen || !kept || (ret_to_send && !send))
		goto out;
	/* The next map, beside the current one: the gate goes on meanwhile.
	 * Reading h->sites needs no lock (only this function changes it). */
	for (size_t i = 0; i < n; i++) {
		const char *name = sites[i].site;
		unsigned flags = sites[i].flags;
		unsigned settled = h->role == HANDOVER_DISCOVERY ? HANDOVER_DISCOVERY_CUT :
								   HANDOVER_SENT;
		const unsigned char *from;
		bool was_seen;

		if (!is_site_ok(name) || map_get(&next, name)) /* a duplicate: the first counts */
			continue;
		from = map_get(&h->sites, name);
		was_seen = from && h->seen[from - h->states];
		kept[nnext].from = from;
		kept[nnext].cut = (flags & HANDOVER_DISCOVERY_CUT) != 0;
		/* Its row was settled and is gone: removed with the site, which
		 * was registered again (both in one snapshot, or this instance
		 * missed the one between). Its hand-over starts again: the
		 * DISCOVERY gate passes it until a new marker, and the SHARD gate
		 * (which passes it: it cannot tell whether shard 0's gate still
		 * drops it) records HANDOVER_SENT again, so that markers go out
		 * and shard 0's owner records a new cut. */
		kept[nnext].gone = was_seen && !(flags & settled);
		seen[nnext] = (flags & settled) != 0;
		if (from && kept[nnext].gone && h->role == HANDOVER_SHARD && send)
			send[nsend++] = name;
		if (from)
			states[nnext] = 0; /* its state now: under the lock, below */
		else if (h->role == HANDOVER_DISCOVERY)
			states[nnext] = (flags & HANDOVER_DISCOVERY_CUT) ? ST_DROP : ST_PASS;
		else if (flags & HANDOVER_SENT)
			states[nnext] = ST_PASS;
		else {
			states[nnext] = ST_HOLD;
			if (send)
				send[nsend++] = name;
		}
		if (map_put(&next, name, &states[nnext], NULL) < 0)
			goto out;
		nnext++;
	}
	if (send) {
		qsort(send, nsend, sizeof(*send), cmp_name);
		if (mqtt_subs_list_make(send, nsend, &list) < 0)
			goto out;
	}

	/* Nothing can fail from here: the kept sites' states, and the swap. */
	pthread_mutex_lock(&h->lock);
	for (size_t k = 0; k < nnext; k++) {
		if (kept[k].from) {
			states[k] = *kept[k].from;
			/* Another owner of shard 0 made the cut. */
			if (h->role == HANDOVER_DISCOVERY && states[k] == ST_PASS && kept[k].cut)
				states[k] = ST_DROP;
			/* The site registered again: handed over again. */
			if (h->role == HANDOVER_DISCOVERY && states[k] == ST_DROP && kept[k].gone)
				states[k] = ST_PASS;
		}
		holding += states[k] == ST_HOLD;
		dropping += states[k] == ST_DROP;
	}
	old = h->sites;
	old_states = h->states;
	old_seen = h->seen;
	h->sites = next;
	h->states = states;
	h->seen = seen;
	h->stats.sites = nnext;
	h->stats.holding = holding;
	h->stats.dropping = dropping;
	pthread_mutex_unlock(&h->lock);

	map_finish(&old, NULL);
	free(old_states);
	free(old_seen);
	if (ret_to_send)
		*ret_to_send = list;
	free(kept);
	free(send);
	return 0;
out:
	map_finish(&next, NULL);
	free(states);
	free(seen);
	free(kept);
	free(send);
	free(list.names);
	return -ENOMEM;
}

/* A DISCOVERY cut of `site`: queued with the spool's end (under the lock).
 * Returns false out of memory: the caller does not cut (a cut PostgreSQL
 * never learns of would hold the site's own shard waiting for it; the
 * next marker, 5 s later, tries again). end_fn takes what lock it takes
 * (the spool's) inside ours: nobody may call into a gate holding that one. */
static bool
queue_cut(struct handover *h, const char *site)
{
	struct cut_entry *e = malloc(sizeof(*e));

	if (!e)
		return false;
	e->next = NULL;
	strcpy(e->cut.site, site);
	e->cut.end = h->end_fn ? h->end_fn(h->end_ctx) : 0;
	*h->tail = e;
	h->tail = &e->next;
	return true;
}

enum handover_verdict
handover_gate(struct handover *h, const char *topic, size_t topic_len)
{
	char site[SITE_MAX + 1];
	const char *p, *end, *slash;
	const size_t mlen = sizeof(HANDOVER_LEVEL) - 1;
	size_t site_len;
	bool marker, has_site;
	unsigned char *st;
	enum handover_verdict v = HANDOVER_PASS;

	/* Under root: "<root>/" then the site level, ended by a '/' (a topic
	 * of fewer levels has no site: topics_parse()'s -ENOENT). The root
	 * is compared as bytes, so a root of several levels works too. */
	if (topic_len <= h->root_len || memcmp(topic, h->root, h->root_len) != 0 ||
	    topic[h->root_len] != '/')
		goto pass;
	p = topic + h->root_len + 1;
	end = topic + topic_len;
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		goto pass;
	site_len = (size_t)(slash - p);
	/* <root>/<site>/_handover exactly, whatever the site. */
	marker = (size_t)(end - slash - 1) == mlen && memcmp(slash + 1, HANDOVER_LEVEL, mlen) == 0;
	/* A site the gate cannot hold (empty, too long, a NUL inside) is not
	 * in it. */
	has_site = site_len > 0 && site_len <= SITE_MAX && !memchr(p, '\0', site_len);
	if (has_site) {
		memcpy(site, p, site_len);
		site[site_len] = '\0';
	} else if (!marker) {
		goto pass;
	}

	pthread_mutex_lock(&h->lock);
	st = has_site ? map_get(&h->sites, site) : NULL;
	if (marker) {
		v = HANDOVER_DROP;
		h->stats.markers++;
		if (st && h->role == HANDOVER_DISCOVERY && *st == ST_PASS) {
			if (queue_cut(h, site)) {
				*st = ST_DROP;
				h->stats.cuts++;
				h->stats.dropping++;
			}
		} else if (st && h->role == HANDOVER_SHARD && *st == ST_HOLD) {
			*st = ST_PASS;
			h->stats.cuts++;
			h->stats.holding--;
		}
	} else if (st && (*st == ST_DROP || *st == ST_HOLD)) {
		v = HANDOVER_DROP;
		h->stats.dropped++;
	} else {
		h->stats.passed++;
	}
	pthread_mutex_unlock(&h->lock);
	return v;
pass:
	pthread_mutex_lock(&h->lock);
	h->stats.passed++;
	pthread_mutex_unlock(&h->lock);
	return HANDOVER_PASS;
}

bool
handover_next_cut(struct handover *h, struct handover_cut *ret_cut)
{
	struct cut_entry *e;

	pthread_mutex_lock(&h->lock);
	e = h->head;
	if (e) {
		h->head = e->next;
		if (!h->head)
			h->tail = &h->head;
	}
	pthread_mutex_unlock(&h->lock);
	if (!e)
		return false;
	*ret_cut = e->cut;
	free(e);
	return true;
}

bool
handover_is_holding(struct handover *h, const char *site)
{
	const unsigned char *st = map_get(&h->sites, site); /* the main loop: no lock for the map */
	bool holding;

	if (!st)
		return false;
	pthread_mutex_lock(&h->lock);
	holding = *st == ST_HOLD;
	pthread_mutex_unlock(&h->lock);
	return holding;
}

void
handover_get_stats(struct handover *h, struct handover_stats *ret_stats)
{
	pthread_mutex_lock(&h->lock);
	*ret_stats = h->stats;
	pthread_mutex_unlock(&h->lock);
}
