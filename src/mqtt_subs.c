/* mqtt_subs.c - one client's inbound subscriptions and their SUBACKs
 * (mqtt_subs.h). */
#include "mqtt_subs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "topics.h"

/* One site: its filters' codes on this connection and as last told. */
struct site {
	int16_t code[MQTT_SUBS_MAX_KINDS];
	int16_t told[MQTT_SUBS_MAX_KINDS];
	char name[];
};

struct mqtt_subs {
	char *root;
	int nk;		     /* filters per site */
	struct site **sites; /* strcmp order */
	size_t n;
	uint64_t generation;
	uint64_t acks, acks_told; /* SUBACKs applied; as of the last news */
};

int
mqtt_subs_create(const char *root, bool handover, struct mqtt_subs **ret_subs)
{
	struct mqtt_subs *s = calloc(1, sizeof(*s));

	if (!s || !(s->root = strdup(root))) {
		free(s);
		return -ENOMEM;
	}
	s->nk = TOPIC_NINBOUND + (handover ? 1 : 0);
	*ret_subs = s;
	return 0;
}

int
mqtt_subs_kinds(const struct mqtt_subs *s)
{
	return s->nk;
}

/* The topic kind of a site's filter number k. */
static enum topic_kind
kind_at(int k)
{
	return k < TOPIC_NINBOUND ? (enum topic_kind)k : TOPIC_HANDOVER;
}

void
mqtt_subs_destroy(struct mqtt_subs *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->sites[i]);
	free(s->sites);
	free(s->root);
	free(s);
}

int
mqtt_subs_site_ok(const char *root, const char *site)
{
	char buf[TOPIC_MAX_BYTES];

	if (strcmp(site, "+") == 0)
		return 1;
	if (!site[0] || strpbrk(site, "+#/"))
		return 0;
	for (int k = 0; k < MQTT_SUBS_MAX_KINDS; k++)
		if (topics_build(buf, sizeof(buf), root, kind_at(k), site, NULL) < 0)
			return 0;
	return 1;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
mqtt_subs_list_make(const char *const *names, size_t n, struct mqtt_subs_list *ret)
{
	size_t bytes = n * sizeof(char *);
	char *pool;

	for (size_t i = 0; i < n; i++)
		bytes += strlen(names[i]) + 1;
	ret->n = n;
	ret->names = malloc(bytes ? bytes : 1);
	if (!ret->names)
		return -ENOMEM;
	pool = (char *)(ret->names + n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]) + 1;

		memcpy(pool, names[i], len);
		ret->names[i] = pool;
		pool += len;
	}
	return 0;
}

static struct site *
new_site(const char *name)
{
	size_t len = strlen(name) + 1;
	struct site *x = malloc(sizeof(*x) + len);

	if (!x)
		return NULL;
	for (int k = 0; k < MQTT_SUBS_MAX_KINDS; k++)
		x->code[k] = x->told[k] = MQTT_SUBS_PENDING;
	memcpy(x->name, name, len);
	return x;
}

/* The names of `n` sites as a list. */
static int
list_sites(struct site *const *sites, size_t n, struct mqtt_subs_list *ret)
{
	const char **names = malloc((n ? n : 1) * sizeof(*names));
	int err;

	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		names[i] = sites[i]->name;
	err = mqtt_subs_list_make(names, n, ret);
	free(names);
	return err;
}

int
mqtt_subs_set(struct mqtt_subs *s, const char *const *sites, size_t n,
	      struct mqtt_subs_list *ret_added, struct mqtt_subs_list *ret_removed,
	      size_t *ret_skipped)
{
	const char **want;
	struct site **next = NULL, **added = NULL, **removed = NULL;
	size_t nwant = 0, nnext = 0, nadded = 0, nremoved = 0, skipped = 0, i, j;
	struct mqtt_subs_list la = { 0 }, lr = { 0 };
	int err = -ENOMEM;

	want = malloc((n ? n : 1) * sizeof(*want));
	if (!want)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (mqtt_subs_site_ok(s->root, sites[i]))
			want[nwant++] = sites[i];
		else
			skipped++;
	}
	qsort(want, nwant, sizeof(*want), cmp_name);
	for (i = j = 0; i < nwant; i++) /* duplicates out */
		if (j == 0 || strcmp(want[j - 1], want[i]) != 0)
			want[j++] = want[i];
	nwant = j;
	if (nwant > MQTT_SUBS_MAX_SITES) {
		skipped += nwant - MQTT_SUBS_MAX_SITES;
		nwant = MQTT_SUBS_MAX_SITES;
	}
	next = malloc((nwant ? nwant : 1) * sizeof(*next));
	added = malloc((nwant ? nwant : 1) * sizeof(*added));
	removed = malloc((s->n ? s->n : 1) * sizeof(*removed));
	if (!next || !added || !removed)
		goto out;
	/* Both sorted: one walk. Kept sites move over with their codes. */
	for (i = j = 0; i < s->n || j < nwant;) {
		int c = i == s->n ? 1 : j == nwant ? -1 : strcmp(s->sites[i]->name, want[j]);

		if (c == 0) {
			next[nnext++] = s->sites[i++];
			j++;
		} else if (c < 0) {
			removed[nremoved++] = s->sites[i++];
		} else {
			if (!(added[nadded] = new_site(want[j])))
				goto out;
			next[nnext++] = added[nadded++];
			j++;
		}
	}
	if ((ret_added && list_sites(added, nadded, &la) < 0) ||
	    (ret_removed && list_sites(removed, nremoved, &lr) < 0))
		goto out;
	/* Done: the sites that left go, the new table takes over. */
	for (i = 0; i < nremoved; i++)
		free(removed[i]);
	free(s->sites);
	s->sites = next;
	s->n = nnext;
	next = NULL;
	nadded = 0;
	if (ret_added)
		*ret_added = la;
	if (ret_removed)
		*ret_removed = lr;
	if (ret_skipped)
		*ret_skipped = skipped;
	la.names = lr.names = NULL;
	err = 0;
out:
	for (i = 0; i < nadded; i++) /* failed: the new sites made so far go */
		free(added[i]);
	free(next);
	free(la.names);
	free(lr.names);
	free(added);
	free(removed);
	free(want);
	return err;
}

size_t
mqtt_subs_sites(const struct mqtt_subs *s)
{
	return s->n;
}

int
mqtt_subs_all(const struct mqtt_subs *s, struct mqtt_subs_list *ret_list)
{
	return list_sites(s->sites, s->n, ret_list);
}

void
mqtt_subs_reset(struct mqtt_subs *s)
{
	for (size_t i = 0; i < s->n; i++)
		for (int k = 0; k < s->nk; k++)
			s->sites[i]->code[k] = MQTT_SUBS_PENDING;
	s->generation++;
}

uint64_t
mqtt_subs_generation(const struct mqtt_subs *s)
{
	return s->generation;
}

static struct site *
find(const struct mqtt_subs *s, const char *name)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->sites[mid]->name, name);

		if (c == 0)
			return s->sites[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool
mqtt_subs_site_granted(const struct mqtt_subs *s, const char *site)
{
	const struct site *x = find(s, site);

	if (!x)
		return false;
	for (int k = 0; k < s->nk; k++)
		if (x->code[k] < 0 || x->code[k] >= 0x80)
			return false;
	return true;
}

void
mqtt_subs_suback(struct mqtt_subs *s, uint64_t generation, const char *const *sites, size_t nsites,
		 const int *codes, size_t ncodes)
{
	if (generation != s->generation)
		return;
	for (size_t i = 0; i < nsites; i++) {
		struct site *x = find(s, sites[i]);

		if (!x)
			continue;
		for (int k = 0; k < s->nk; k++) {
			size_t f = i * (size_t)s->nk + (size_t)k;

			x->code[k] = (int16_t)(f < ncodes ? codes[f] : 0x80);
		}
	}
	s->acks++;
}

void
mqtt_subs_count(const struct mqtt_subs *s, struct mqtt_subs_counts *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->first_refused_code = -1;
	for (size_t i = 0; i < s->n; i++) {
		for (int k = 0; k < s->nk; k++) {
			int c = s->sites[i]->code[k];

			if (c == MQTT_SUBS_PENDING) {
				ret->pending++;
			} else if (c >= 0x80) {
				if (ret->refused++ == 0) {
					mqtt_subs_build(s, s->sites[i]->name, k, ret->first_refused,
							sizeof(ret->first_refused));
					ret->first_refused_code = c;
				}
			} else if (c < 1) {
				ret->downgraded++;
			} else {
				ret->granted++;
			}
		}
	}
}

size_t
mqtt_subs_filters(const struct mqtt_subs *s)
{
	return s->n * (size_t)s->nk;
}

int
mqtt_subs_build(const struct mqtt_subs *s, const char *site, int k, char *buf, size_t len)
{
	if (strcmp(site, "+") == 0) /* every site */
		return topics_filter(buf, len, s->root, kind_at(k));
	return topics_build(buf, len, s->root, kind_at(k), site, NULL);
}

int
mqtt_subs_filter(const struct mqtt_subs *s, size_t i, char *buf, size_t len, int *ret_code)
{
	const struct site *x;

	if (i >= mqtt_subs_filters(s))
		return -1;
	x = s->sites[i / (size_t)s->nk];
	*ret_code = x->code[i % (size_t)s->nk];
	return mqtt_subs_build(s, x->name, (int)(i % (size_t)s->nk), buf, len);
}

size_t
mqtt_subs_news(struct mqtt_subs *s, void (*fn)(void *arg, const char *filter, int code, int was),
	       void *arg, size_t max)
{
	char filter[TOPIC_MAX_BYTES];
	size_t told = 0, untold = 0;

	if (s->acks == s->acks_told)
		return 0;
	s->acks_told = s->acks;
	for (size_t i = 0; i < s->n; i++) {
		struct site *x = s->sites[i];

		for (int k = 0; k < s->nk; k++) {
			int c = x->code[k], was = x->told[k];

			if (c == MQTT_SUBS_PENDING || c == was)
				continue;
			x->told[k] = (int16_t)c;
			if (was == MQTT_SUBS_PENDING && c >= 1 && c < 0x80)
				continue; /* granted as asked, the first time: no news */
			if (told == max) {
				untold++;
				continue;
			}
			told++;
			if (mqtt_subs_build(s, x->name, k, filter, sizeof(filter)) >= 0)
				fn(arg, filter, c, was);
		}
	}
	return untold;
}
