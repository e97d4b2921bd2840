/* alert_state.h - what an alert is, and the one table of its kinds.
 *
 * The owner of alert state's shape (issue 15): the kinds (ALERT_KINDS
 * below: the enum, the names, the usual severity, what an aggregate's
 * subjects are, whether a timer raises it), one struct for an alert's
 * state, the names of severities and states, and the rule state restored
 * from PostgreSQL at start (SPEC G3) as typed rows: the SQL that reads it
 * and the parsers of its rows live here, next to the names they produce,
 * so the register thread (registry_load.c) hands the rules structs, never
 * strings to match. Pure: no I/O, no libpq (it only holds the SQL text).
 *
 * rules.c (the engine) keeps alerts of this shape; alerts.c renders them;
 * store.c writes them; registry_load.c reads them back. */
#ifndef CORDON_ALERT_STATE_H
#define CORDON_ALERT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "normalize.h"

enum alert_severity {
	SEVERITY_INFO,
	SEVERITY_WARNING,
	SEVERITY_CRITICAL,
};

/* The kinds: X(ID, name, usual severity, an aggregate's subjects, timer).
 * The name is the word in topics, PostgreSQL and docs/alerts.md (a
 * section "### `name`" there: test_alert_state checks it). The severity
 * is the one a rule raises it with unless the rule says otherwise (fever
 * from critical_c, an urgent medical call). A timer kind is raised again
 * on every tick while its condition holds: once folded into an aggregate
 * its subject is not counted again. Adding a kind: HACKING.md (one line
 * here, its backslash in the column of the others). */
/* clang-format off */
#define ALERT_KINDS(X)                                                                      \
	X(FEVER, "fever", SEVERITY_WARNING, "subjects", false)                              \
	X(ISOLATION_OVERDUE, "isolation_overdue", SEVERITY_WARNING, "subjects", true)       \
	X(ISOLATION_SYMPTOM, "isolation_symptom", SEVERITY_WARNING, "subjects", false)      \
	X(ISOLATION_BREACH, "isolation_breach", SEVERITY_CRITICAL, "households", false)     \
	X(SEALED_GATE, "sealed_gate", SEVERITY_CRITICAL, "gates", false)                    \
	X(GATE_SILENT, "gate_silent", SEVERITY_WARNING, "gates", true)                      \
	X(UNKNOWN_CARD, "unknown_card", SEVERITY_WARNING, "cards", false)                   \
	X(EXIT_QUOTA, "exit_quota", SEVERITY_WARNING, "households", false)                  \
	X(DISINFECTION_OVERDUE, "disinfection_overdue", SEVERITY_WARNING, "zones", true)    \
	X(HOTLINE_UNRESOLVED, "hotline_unresolved", SEVERITY_WARNING, "calls", true)        \
	X(BACKLOG, "backlog", SEVERITY_CRITICAL, "subjects", false)                         \
	X(CLIENT_ID_CONFLICT, "client_id_conflict", SEVERITY_CRITICAL, "subjects", false)  \
	X(CARD_EXCEPTION, "card_exception", SEVERITY_WARNING, "households", false)          \
	X(NEED_OVERDUE, "need_overdue", SEVERITY_WARNING, "needs", true)                    \
	X(CALL_MISSED, "call_missed", SEVERITY_WARNING, "households", true)                 \
	X(DROPOFF_UNCOLLECTED, "dropoff_uncollected", SEVERITY_WARNING, "households", true)
/* clang-format on */

enum alert_kind {
#define ALERT_KIND_ENUM(id, name, severity, noun, timer) KIND_##id,
	ALERT_KINDS(ALERT_KIND_ENUM)
#undef ALERT_KIND_ENUM
		KIND_COUNT,
};

struct alert_kind_info {
	const char *name;
	enum alert_severity severity;
	const char *noun; /* what an aggregate's subjects are, in the plural */
	bool timer;
};

enum alert_state {
	ALERT_RAISED,
	ALERT_ACKED,
	ALERT_RESOLVED,
};

#define ALERT_SUBJECT_MAX (NORM_ID_MAX + 24)
/* The subject of a site's aggregate alert of one kind: the subjects past
 * max_open_alerts fold into it (no subject of an event can be "*"). */
#define ALERT_AGGREGATE "*"
#define ALERT_SAMPLE 4 /* subjects an aggregate shows */
#define ALERT_SAMPLE_MAX (ALERT_SAMPLE * ALERT_SUBJECT_MAX)

/* One alert: its current state. */
struct alert {
	char alert_id[33];
	enum alert_kind kind;
	enum alert_severity severity;
	enum alert_state state;
	char site[NORM_ID_MAX + 1];
	char subject[ALERT_SUBJECT_MAX];
	char event_key[NORM_STORED_KEY_MAX]; /* the first triggering event */
	/* That event's content hash (tables_content_hash()); all zero when
	 * no event raised the alert (a timer). The store points the alert at
	 * the event's own row when its device reused the key (sql/0006). */
	uint8_t event_hash[NORM_HASH_LEN];
	char gate[NORM_ID_MAX + 1];
	char household[NORM_ID_MAX + 1];
	char card[NORM_ID_MAX + 1];
	char zone[NORM_ID_MAX + 1];
	char call_id[NORM_ID_MAX + 1];
	int16_t temp_dc;			    /* TEMP_NONE when not a reading */
	int64_t raised_us, updated_us, resolved_us; /* wall clock, us since the epoch */
	int64_t published_mono_us;		    /* last transition handed out (the engine's
					 * monotonic time; set by the engine) */
	uint32_t count;				    /* triggers so far */
	uint32_t published_count;		    /* count at the last transition */
	char reason[32];			    /* why it was resolved */
	char by[NORM_ID_MAX + 1];		    /* who acked or resolved it */
	/* An aggregate (subject ALERT_AGGREGATE) only: the distinct subjects
	 * folded into it (exact up to 256, then a HyperLogLog estimate, see
	 * rules.c), and the first ALERT_SAMPLE of them, ' '-separated. */
	uint32_t distinct;
	char sample[ALERT_SAMPLE_MAX];
};

/* A transition to publish and store: the alert as it is after it. */
struct alert_transition {
	struct alert a;
	const char *what; /* "raised", "updated", "acked", "resolved" */
};

/* Whether a kind is of the instance, not of a site (backlog,
 * client_id_conflict: site "_daemon"): never of a shard. */
bool alert_state_is_instance_kind(enum alert_kind k);
/* The kind's row of the table (k < KIND_COUNT). */
const struct alert_kind_info *alert_state_kind(enum alert_kind k);
/* "fever", ...; "?" for no kind. */
const char *alert_state_kind_name(enum alert_kind k);
/* The kind named `name`, or -EINVAL. */
int alert_state_kind_from_name(const char *name);
const char *alert_state_severity_name(enum alert_severity s);
/* The severity named `name`, or -EINVAL. */
int alert_state_severity_from_name(const char *name);
/* "raised", "acked", "resolved" */
const char *alert_state_name(enum alert_state s);
/* The state named `name`, or -EINVAL. */
int alert_state_from_name(const char *name);
/* Whether `a` is an aggregate alert (subject ALERT_AGGREGATE). */
bool alert_state_is_aggregate(const struct alert *a);

/* ---- the rule state restored at start (SPEC G3) ---- */

/* What a restored last-seen time is of (X(ID, name)): a gate's message, a
 * disinfection of a zone, a check (household, person or ""), an open
 * urgent call (sub: its category), a resolved call, an outward pass of a
 * household, a sealed gate's latest `closed`, its latest breach, a
 * household's latest card_exception alert (sub: "<alert_id> <event_key>
 * <over>", over 1 when it was resolved because the register no longer had
 * the excess or the check was off, else 0). The
 * people work (issue 16), id the need or the household: an open or
 * assigned need's open (sub: its household), its category (sub), its due
 * time, its latest assignment; a need delivered or cancelled (when); a
 * household's latest welfare call that reached it; a delivery placed at
 * the drop-off point after the household's latest collection (sub: the
 * item), and that collection. The names are what alert_state_seen_sql()
 * selects. */
#define ALERT_SEEN(X)                             \
	X(GATE, "gate")                           \
	X(ZONE, "zone")                           \
	X(CHECK, "check")                         \
	X(CALL, "call")                           \
	X(CALL_RESOLVED, "call_resolved")         \
	X(EXIT, "exit")                           \
	X(SEAL_CLOSED, "seal_closed")             \
	X(SEAL_BREACH, "seal_breach")             \
	X(NEED_OPEN, "need_open")                 \
	X(NEED_CATEGORY, "need_category")         \
	X(NEED_DUE, "need_due")                   \
	X(NEED_ASSIGNED, "need_assigned")         \
	X(NEED_DONE, "need_done")                 \
	X(WELFARE_REACHED, "welfare_reached")     \
	X(DROPOFF_PLACED, "dropoff_placed")       \
	X(DROPOFF_COLLECTED, "dropoff_collected") \
	X(CARD_EXCEPTION, "card_exception")

enum alert_seen_what {
#define ALERT_SEEN_ENUM(id, name) SEEN_##id,
	ALERT_SEEN(ALERT_SEEN_ENUM)
#undef ALERT_SEEN_ENUM
		SEEN_COUNT,
};

/* One restored last-seen time: at_us is a wall time (us since the epoch),
 * by rule time. */
struct alert_seen {
	enum alert_seen_what what;
	char site[NORM_ID_MAX + 1], id[NORM_ID_MAX + 1], sub[NORM_ID_MAX + 1];
	int64_t at_us;
};

const char *alert_state_seen_name(enum alert_seen_what w);
/* The what named `name`, or -EINVAL. */
int alert_state_seen_from_name(const char *name);

/* The open alerts: aggregates first, then the oldest $1 of each site and
 * kind; ALERT_STATE_ALERT_COLS columns, parsed by alert_state_parse_alert. */
#define ALERT_STATE_ALERT_COLS 21
extern const char alert_state_alerts_sql[];
/* The last-seen times; ALERT_STATE_SEEN_COLS columns, parsed by
 * alert_state_parse_seen. */
#define ALERT_STATE_SEEN_COLS 5
extern const char alert_state_seen_sql[];
/* The same two for the sites of a list only (a clustered instance's shard
 * taken over): the alerts' with the list as $2 (text[]), the seen times'
 * as $1. Each branch filters its own rows (a branch's LIMIT counts the
 * sites listed). */
extern const char alert_state_alerts_sites_sql[];
extern const char alert_state_seen_sites_sql[];

/* One row of alert_state_alerts_sql (ncols text values, as libpq gives
 * them) into *ret (an open alert as PostgreSQL keeps it; its last update
 * taken as its last publication by rules_restore_alert) and *ret_more
 * (its site and kind has more open alerts than were loaded). Returns 0,
 * or -EINVAL (a wrong column count, or a kind, severity or state this
 * build does not know: nothing set). */
int alert_state_parse_alert(const char *const *v, size_t ncols, struct alert *ret, bool *ret_more)
	__attribute__((warn_unused_result));
/* One row of alert_state_seen_sql into *ret. Returns 0, or -EINVAL (a
 * wrong column count or an unknown what: nothing set). */
int alert_state_parse_seen(const char *const *v, size_t ncols, struct alert_seen *ret)
	__attribute__((warn_unused_result));

#endif
