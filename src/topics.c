/* topics.c - the table of topic shapes: build, parse, filters (topics.h) */
#include "topics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const shapes[TOPIC_NKINDS] = {
	[TOPIC_GATE_EVENT] = "+/gate/+/event",
	[TOPIC_GATE_STATUS] = "+/gate/+/status",
	[TOPIC_DISINFECTION] = "+/disinfection/+",
	[TOPIC_HOTLINE] = "+/hotline",
	[TOPIC_CHECK] = "+/isolation/+/check",
	[TOPIC_ACK] = "+/ack",
	[TOPIC_NEED] = "+/need",
	[TOPIC_CALL] = "+/call/+",
	[TOPIC_DROPOFF] = "+/dropoff",
	[TOPIC_ALERT] = "+/alert/+",
	[TOPIC_ALERT_STATE] = "+/alerts/+",
	[TOPIC_REJECT] = "+/reject",
	[TOPIC_DAEMON_STATE] = "_daemon/+/state",
	[TOPIC_DAEMON_SET_ASIDE] = "_daemon/+/set_aside",
	[TOPIC_DAEMON_STATS] = "_daemon/+/stats",
	[TOPIC_HANDOVER] = "+/_handover",
};

const char *
topics_shape(enum topic_kind kind)
{
	return (unsigned)kind < TOPIC_NKINDS ? shapes[kind] : "";
}

int
topics_build(char *buf, size_t len, const char *root, enum topic_kind kind, const char *site,
	     const char *id)
{
	const char *p = topics_shape(kind);
	size_t n;
	int first = 1;
	int w;

	if (len == 0)
		return -1;
	w = snprintf(buf, len, "%s", root);
	if (w < 0 || (size_t)w >= len)
		goto toolong;
	n = (size_t)w;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		const char *word = p;

		if (l == 1 && *p == '+') {
			word = first ? site : id;
			if (!word)
				word = "+";
			l = strlen(word);
		}
		if (n + 1 + l >= len)
			goto toolong;
		buf[n++] = '/';
		memcpy(buf + n, word, l);
		n += l;
		p = end ? end + 1 : p + strlen(p);
		first = 0;
	}
	buf[n] = '\0';
	return (int)n;
toolong:
	buf[0] = '\0';
	return -1;
}

int
topics_filter(char *buf, size_t len, const char *root, enum topic_kind kind)
{
	return topics_build(buf, len, root, kind, NULL, NULL);
}

struct level {
	const char *s;
	size_t len;
};

/* Splits into at most max levels; returns the count, or -1 when more. */
static int
split(const char *t, size_t len, struct level *lv, int max)
{
	int n = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		if (n == max)
			return -1;
		lv[n].s = t + start;
		lv[n].len = i - start;
		n++;
		start = i + 1;
	}
	return n;
}

/* Whether levels lv[0..n) (below the root) have the shape; fills the id. */
static int
matches(const char *shape, const struct level *lv, int n, struct topic_parts *ret)
{
	const char *p = shape;
	int i = 0;

	ret->id = NULL;
	ret->id_len = 0;
	for (; *p; i++) {
		const char *end = strchr(p, '/');
		size_t l = end ? (size_t)(end - p) : strlen(p);

		if (i == n)
			return 0;
		if (l == 1 && *p == '+') {
			if (i > 0) {
				ret->id = lv[i].s;
				ret->id_len = lv[i].len;
			}
		} else if (lv[i].len != l || memcmp(lv[i].s, p, l) != 0) {
			return 0;
		}
		p = end ? end + 1 : p + l;
	}
	return i == n;
}

int
topics_parse(const char *topic, size_t len, const char *root, struct topic_parts *ret)
{
	struct level lv[TOPIC_MAX_LEVELS];
	int n = split(topic, len, lv, TOPIC_MAX_LEVELS);

	if (n < 3 || lv[0].len != strlen(root) || memcmp(lv[0].s, root, lv[0].len) != 0)
		return -ENOENT;
	ret->site = lv[1].s;
	ret->site_len = lv[1].len;
	for (int k = 0; k < TOPIC_NKINDS; k++) {
		if (matches(shapes[k], lv + 1, n - 1, ret)) {
			ret->kind = (enum topic_kind)k;
			return 0;
		}
	}
	ret->id = NULL;
	ret->id_len = 0;
	return -EINVAL;
}
