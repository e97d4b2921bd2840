/* topics.h - every MQTT topic shape cordon reads or writes, in one table
 *
 * One table (topics.c) says how each topic looks below the topic root;
 * the same table builds topics (cordond's alerts, rejects and daemon
 * state; the tools' publications and subscriptions), parses them (the
 * normalizer's routing) and gives the subscription filters. A shape is
 * written with `+` where a level varies: a `+` in the first level is the
 * site, another `+` the id (gate, zone, household, alert kind, alert id
 * or client id). docs/topics.md describes each one. */
#ifndef CORDON_TOPICS_H
#define CORDON_TOPICS_H

#include <stddef.h>

/* The inbound kinds come first (TOPIC_NINBOUND of them). */
enum topic_kind {
	TOPIC_GATE_EVENT,   /* +/gate/+/event: a pass or a reading */
	TOPIC_GATE_STATUS,  /* +/gate/+/status: a terminal's heartbeat or gate state */
	TOPIC_DISINFECTION, /* +/disinfection/+: a zone disinfected */
	TOPIC_HOTLINE,	    /* +/hotline: a hotline call's step */
	TOPIC_CHECK,	    /* +/isolation/+/check: a health check at home */
	TOPIC_ACK,	    /* +/ack: an operator's ack or resolve */
	TOPIC_NEED,	    /* +/need: a step of a need of the needs ledger */
	TOPIC_CALL,	    /* +/call/+: a welfare call to an isolated household */
	TOPIC_DROPOFF, /* +/dropoff: a delivery placed at or collected from the drop-off point */
	TOPIC_ALERT,   /* +/alert/+: an alert transition, by kind */
	TOPIC_ALERT_STATE,	/* +/alerts/+: an alert's retained state, by id */
	TOPIC_REJECT,		/* +/reject: a reject notice */
	TOPIC_DAEMON_STATE,	/* _daemon/+/state: cordond's retained state and will */
	TOPIC_DAEMON_SET_ASIDE, /* _daemon/+/set_aside: an outbound message set aside */
	TOPIC_DAEMON_STATS,	/* _daemon/+/stats: cordond's figures every 10 s (status.c) */
	TOPIC_HANDOVER,		/* +/_handover: a site's hand-over marker (handover.h) */
	TOPIC_NKINDS,
};
#define TOPIC_NINBOUND (TOPIC_DROPOFF + 1)

/* A buffer that holds any topic cordon builds (a root, a site and an id
 * of the lengths config and normalize allow, an alert id). */
#define TOPIC_MAX_BYTES 512

/* The most levels a topic cordon reads may have (root included). */
#define TOPIC_MAX_LEVELS 8

/* The shape of a kind below the root, e.g. "+/gate/+/event". */
const char *topics_shape(enum topic_kind kind);

/* Writes "<root>/<shape>" into buf with the site and the id filled in;
 * a NULL site or id is written `+` (a subscription filter). Returns the
 * length, or -1 when it does not fit (buf then holds ""). */
int topics_build(char *buf, size_t len, const char *root, enum topic_kind kind, const char *site,
		 const char *id);

/* The subscription filter of a kind: topics_build() with `+` for site and id. */
int topics_filter(char *buf, size_t len, const char *root, enum topic_kind kind);

struct topic_parts {
	enum topic_kind kind;
	const char *site; /* the level after the root (not NUL-terminated) */
	size_t site_len;
	const char *id; /* the id level, or NULL when the shape has none */
	size_t id_len;
};

/* Matches a topic of len bytes against the shapes under root. Returns 0
 * (ret filled), -ENOENT when it is not "<root>/<site>/..." (fewer than
 * three levels, more than TOPIC_MAX_LEVELS, another root), or -EINVAL
 * when it is but no shape matches (then only ret->site and
 * ret->site_len are set). Levels are not checked beyond their words:
 * the caller judges the site and id (normalize_valid_id()). */
int topics_parse(const char *topic, size_t len, const char *root, struct topic_parts *ret);

#endif
