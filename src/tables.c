/* tables.c - the event tables (sql/0001, sql/0002) seen from the store:
 * column lists, idempotent insert statements, and an event's values. */
#include "tables.h"

#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* Each table's columns: the key, its data, and the content hash. */
#define GATE_DATA                                                                     \
	"site, gate, ts, received_at, card, person, direction, temp_c, mask, flags, " \
	"vendor"
#define STATUS_DATA "site, gate, ts, received_at, state, flags"
#define DISINF_DATA "site, zone, ts, received_at, crew, agent, flags"
#define HOTLINE_DATA                                                            \
	"site, call_id, action, ts, received_at, household, category, urgent, " \
	"note, flags"
#define CHECK_DATA "site, household, person, ts, received_at, temp_c, symptoms, flags"
#define ACK_DATA "site, alert_id, by_whom, action, note, ts, received_at"
#define NEED_DATA                                                                     \
	"site, need_id, action, ts, received_at, household, category, due, by_whom, " \
	"call_id, note, flags"
#define CALL_DATA "site, household, ts, received_at, by_whom, outcome, note, flags"
#define DROPOFF_DATA "site, household, ts, received_at, item, action, by_whom, note, flags"
#define COLS(data) "event_key, " data ", content_hash"

/* New hotline steps (only those not seen before: RETURNING of the
 * idempotent insert) fold into one row per call. */
#define HOTLINE_FOLD(source)                                                                    \
	"INSERT INTO hotline_calls (call_id, site, household, category, urgent, status,"        \
	" opened_at, resolved_at, updated_at)"                                                  \
	" SELECT call_id, site,"                                                                \
	" (array_agg(household ORDER BY ts DESC) FILTER (WHERE household IS NOT NULL))[1],"     \
	" (array_agg(category ORDER BY ts DESC) FILTER (WHERE category IS NOT NULL))[1],"       \
	" (array_agg(urgent ORDER BY ts DESC) FILTER (WHERE urgent IS NOT NULL))[1],"           \
	" CASE WHEN bool_or(action = 'resolve') THEN 'resolved' ELSE 'open' END,"               \
	" min(ts) FILTER (WHERE action = 'open'), max(ts) FILTER (WHERE action = 'resolve'),"   \
	" max(ts) FROM " source " GROUP BY site, call_id"                                       \
	" ON CONFLICT (site, call_id) DO UPDATE SET"                                            \
	" household = coalesce(excluded.household, hotline_calls.household),"                   \
	" category = coalesce(excluded.category, hotline_calls.category),"                      \
	" urgent = CASE WHEN excluded.updated_at >= hotline_calls.updated_at"                   \
	"   THEN coalesce(excluded.urgent, hotline_calls.urgent)"                               \
	"   ELSE coalesce(hotline_calls.urgent, excluded.urgent) END,"                          \
	" status = CASE WHEN hotline_calls.status = 'resolved' OR excluded.status = 'resolved'" \
	"   THEN 'resolved' ELSE 'open' END,"                                                   \
	" opened_at = least(hotline_calls.opened_at, excluded.opened_at),"                      \
	" resolved_at = greatest(hotline_calls.resolved_at, excluded.resolved_at),"             \
	" updated_at = greatest(hotline_calls.updated_at, excluded.updated_at)"

/* A field of the row of a need or call that the newer step says (by ts),
 * when it says anything. */
#define NEWER(t, col)                                                                              \
	" " col " = CASE WHEN excluded.updated_at >= " t ".updated_at THEN coalesce(excluded." col \
	", " t "." col ") ELSE coalesce(" t "." col ", excluded." col ") END,"

/* New steps of needs fold into one row per need (sql/0008), in any order:
 * the status is the furthest step seen (delivered > cancelled > assigned >
 * open), the times the first open, the latest assign (with its volunteer),
 * the first delivery and cancel; household, category, due and note as the
 * newest step that gives them. */
#define NEED_STATUS(d, c, a)                                                                   \
	"CASE WHEN " d " IS NOT NULL THEN 'delivered' WHEN " c " IS NOT NULL THEN 'cancelled'" \
	" WHEN " a " IS NOT NULL THEN 'assigned' ELSE 'open' END"
#define NEED_FOLD(source)                                                                                                                                                                                                    \
	"INSERT INTO needs (site, need_id, household, category, status, opened_at, due,"                                                                                                                                     \
	" assigned_to, assigned_at, delivered_at, delivered_by, cancelled_at, call_id, note,"                                                                                                                                \
	" updated_at)"                                                                                                                                                                                                       \
	" SELECT site, need_id,"                                                                                                                                                                                             \
	" (array_agg(household ORDER BY ts DESC) FILTER (WHERE household IS NOT NULL))[1],"                                                                                                                                  \
	" (array_agg(category ORDER BY ts DESC) FILTER (WHERE category IS NOT NULL))[1],"                                                                                                                                    \
	" " NEED_STATUS(                                                                                                                                                                                                     \
		"min(ts) FILTER (WHERE action = 'deliver')",                                                                                                                                                                 \
		"min(ts) FILTER (WHERE action = 'cancel')",                                                                                                                                                                  \
		"max(ts) FILTER (WHERE action = 'assign')") ","                                                                                                                                                              \
							    " min(ts) FILTER (WHERE action = 'open'),"                                                                                                                       \
							    " (array_agg(due ORDER BY ts DESC) FILTER (WHERE due IS NOT NULL))[1],"                                                                                          \
							    " (array_agg(by_whom ORDER BY ts DESC) FILTER (WHERE action = 'assign'))[1],"                                                                                    \
							    " max(ts) FILTER (WHERE action = 'assign'),"                                                                                                                     \
							    " min(ts) FILTER (WHERE action = 'deliver'),"                                                                                                                    \
							    " (array_agg(by_whom ORDER BY ts) FILTER (WHERE action = 'deliver'))[1],"                                                                                        \
							    " min(ts) FILTER (WHERE action = 'cancel'),"                                                                                                                     \
							    " (array_agg(call_id ORDER BY ts) FILTER (WHERE call_id IS NOT NULL))[1],"                                                                                       \
							    " (array_agg(note ORDER BY ts DESC) FILTER (WHERE note IS NOT NULL))[1],"                                                                                        \
							    " max(ts) FROM " source                                                                                                                                          \
							    " GROUP BY site, need_id"                                                                                                                                        \
							    " ON CONFLICT (site, need_id) DO UPDATE SET" NEWER(                                                                                                              \
								    "needs",                                                                                                                                                 \
								    "household") NEWER("needs",                                                                                                                              \
										       "category") NEWER("needs",                                                                                                            \
													 "due")                                                                                                              \
								    NEWER("needs", "note") " status = " NEED_STATUS(                                                                                                         \
									    "least(needs.delivered_at, excluded.delivered_at)",                                                                                              \
									    "least(needs.cancelled_at, excluded.cancelled_at)",                                                                                              \
									    "greatest(needs.assigned_at, excluded.assigned_at)") ","                                                                                         \
																 " opened_at = least(needs.opened_at, excluded.opened_at),"                                  \
																 " assigned_to = CASE WHEN excluded.assigned_at >= needs.assigned_at"                        \
																 "   OR needs.assigned_at IS NULL THEN coalesce(excluded.assigned_to, needs.assigned_to)"    \
																 "   ELSE needs.assigned_to END,"                                                            \
																 " assigned_at = greatest(needs.assigned_at, excluded.assigned_at),"                         \
																 " delivered_by = CASE WHEN excluded.delivered_at < needs.delivered_at"                      \
																 "   OR needs.delivered_at IS NULL THEN coalesce(excluded.delivered_by, needs.delivered_by)" \
																 "   ELSE needs.delivered_by END,"                                                           \
																 " delivered_at = least(needs.delivered_at, excluded.delivered_at),"                         \
																 " cancelled_at = least(needs.cancelled_at, excluded.cancelled_at),"                         \
																 " call_id = coalesce(needs.call_id, excluded.call_id),"                                     \
																 " updated_at = greatest(needs.updated_at, excluded.updated_at)"

#define ONE(t, cols, params) \
	"INSERT INTO " t " (" cols ") VALUES (" params ") ON CONFLICT (event_key) DO NOTHING"

/* The staged rows into table `t` in one statement: those whose key is
 * new (`i`), and (`d`) those whose key holds a row of other content (a
 * device that reused a record id, issue 14.7) under "<key>~<first 12 hex
 * digits of their content hash>" (the same for every delivery of that
 * reading: a redelivery adds nothing). The row a staged row meets is the
 * one inserted just now from the same batch (`i`: this statement does not
 * see it in `t`) or the one that was there (looked up by key, the primary
 * key index: only for the staged rows that `i` did not take); a row stored
 * before sql/0006 (content_hash NULL) counts as the same content. A
 * derived row is listed in event_keys_reused, and the alerts its reading
 * raised (alerts.event_hash, set from the event by the rules) are pointed
 * at it. `ret`: what `i` returns; `more`: further CTEs. Returns the
 * derived keys. */
#define INSERT_STAGED(t, data, ret, more)                                                                                           \
	"WITH i AS (INSERT INTO " t " (" COLS(data) ") SELECT " COLS(                                                               \
		data) " FROM stage_" t " ON CONFLICT (event_key) DO NOTHING RETURNING " ret "),"                                    \
		      " d AS (INSERT INTO " t " (" COLS(                                                                            \
			      data) ")"                                                                                             \
				    " SELECT event_key || '~' || substr(encode(content_hash, 'hex'), 1, 12), " data                 \
				    ", content_hash FROM (SELECT s.* FROM stage_" t                                                 \
				    " s LEFT JOIN i ON i.event_key = s.event_key"                                                   \
				    "   WHERE coalesce(i.content_hash, (SELECT e.content_hash FROM " t                              \
				    " e"                                                                                            \
				    "     WHERE e.event_key = s.event_key)) <> s.content_hash) s"                                   \
				    " ON CONFLICT (event_key) DO NOTHING RETURNING *),"                                             \
				    " r AS (INSERT INTO event_keys_reused (event_key, content_hash, derived_key,"                   \
				    " event_table, received_at) SELECT left(event_key, -13), content_hash, event_key, '" t          \
				    "',"                                                                                            \
				    " received_at FROM d ON CONFLICT DO NOTHING),"                                                  \
				    " a AS (UPDATE alerts SET event_key = d.event_key FROM d"                                       \
				    " WHERE alerts.event_key = left(d.event_key, -13) AND alerts.event_hash = d.content_hash)" more \
				    " SELECT event_key FROM d"
#define INSERT_PLAIN(t, data) INSERT_STAGED(t, data, "event_key, content_hash", "")

static const struct table_desc descs[] = {
	{ EVENT_GATE, "gate_events", COLS(GATE_DATA), 13, INSERT_PLAIN("gate_events", GATE_DATA),
	  ONE("gate_events", COLS(GATE_DATA),
	      "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"),
	  1 },
	{ EVENT_STATUS, "gate_status", COLS(STATUS_DATA), 8,
	  INSERT_PLAIN("gate_status", STATUS_DATA),
	  ONE("gate_status", COLS(STATUS_DATA), "$1, $2, $3, $4, $5, $6, $7, $8"), 1 },
	{ EVENT_DISINFECTION, "disinfections", COLS(DISINF_DATA), 9,
	  INSERT_PLAIN("disinfections", DISINF_DATA),
	  ONE("disinfections", COLS(DISINF_DATA), "$1, $2, $3, $4, $5, $6, $7, $8, $9"), 1 },
	/* Hotline steps: the new ones, reused ids too, fold into their call
	 * (one fold: two in one statement could update a call twice). */
	{ EVENT_HOTLINE, "hotline_events", COLS(HOTLINE_DATA), 12,
	  INSERT_STAGED(
		  "hotline_events", HOTLINE_DATA, "*",
		  ", f AS (" HOTLINE_FOLD("(SELECT * FROM i UNION ALL SELECT * FROM d) n") ")"),
	  "WITH new AS (" ONE("hotline_events", COLS(HOTLINE_DATA),
			      "$1, $2, $3, $4, $5::timestamptz, $6, $7, $8, $9::boolean, $10, $11,"
			      " $12::bytea") " RETURNING *) " HOTLINE_FOLD("new"),
	  0 },
	{ EVENT_CHECK, "isolation_checks", COLS(CHECK_DATA), 10,
	  INSERT_PLAIN("isolation_checks", CHECK_DATA),
	  ONE("isolation_checks", COLS(CHECK_DATA), "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"), 1 },
	{ EVENT_ACK, "acks", COLS(ACK_DATA), 9, INSERT_PLAIN("acks", ACK_DATA),
	  ONE("acks", COLS(ACK_DATA), "$1, $2, $3, $4, $5, $6, $7, $8, $9"), 1 },
	/* Steps of needs fold into their need, as hotline steps. */
	{ EVENT_NEED, "need_events", COLS(NEED_DATA), 14,
	  INSERT_STAGED("need_events", NEED_DATA, "*",
			", f AS (" NEED_FOLD("(SELECT * FROM i UNION ALL SELECT * FROM d) n") ")"),
	  "WITH new AS (" ONE("need_events", COLS(NEED_DATA),
			      "$1, $2, $3, $4, $5::timestamptz, $6, $7, $8, $9::timestamptz, $10,"
			      " $11, $12, $13, $14::bytea") " RETURNING *) " NEED_FOLD("new"),
	  0 },
	{ EVENT_CALL, "welfare_calls", COLS(CALL_DATA), 10,
	  INSERT_PLAIN("welfare_calls", CALL_DATA),
	  ONE("welfare_calls", COLS(CALL_DATA), "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"), 1 },
	{ EVENT_DROPOFF, "dropoffs", COLS(DROPOFF_DATA), 11, INSERT_PLAIN("dropoffs", DROPOFF_DATA),
	  ONE("dropoffs", COLS(DROPOFF_DATA), "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"), 1 },
};

const struct table_desc *
tables_for(enum event_type type)
{
	for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++)
		if (descs[i].type == type)
			return &descs[i];
	return NULL;
}

const struct table_desc *
tables_all(size_t *ret_n)
{
	*ret_n = sizeof(descs) / sizeof(descs[0]);
	return descs;
}

static const char *
nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

static const char *
temp_text(const struct event *ev, char *buf, size_t len)
{
	if (ev->temp_dc == TEMP_NONE)
		return NULL;
	temp_format(ev->temp_dc, buf, len);
	return buf;
}

static const char *
flags_text(const struct event *ev, char *buf, size_t len)
{
	size_t n = 0;

	buf[n++] = '{';
	for (unsigned f = 1; f <= FLAG_DEVICE_ABNORMAL; f <<= 1)
		if (ev->flags & f)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 1 ? "," : "",
					      normalize_flag_name(f));
	buf[n++] = '}';
	buf[n] = '\0';
	return buf;
}

/* "a,b" -> {"a","b"} with " and \ escaped. A csv of at most
 * NORM_TEXT_MAX bytes always fits in TABLE_LIST_MAX (the loop's bound
 * only guards the buffer). */
static const char *
list_text(const char *csv, char *buf, size_t len)
{
	size_t n = 0;

	buf[n++] = '{';
	if (*csv) {
		buf[n++] = '"';
		for (const char *p = csv; *p && n + 5 < len; p++) {
			if (*p == ',') {
				buf[n++] = '"';
				buf[n++] = ',';
				buf[n++] = '"';
				continue;
			}
			if (*p == '"' || *p == '\\')
				buf[n++] = '\\';
			buf[n++] = *p;
		}
		buf[n++] = '"';
	}
	buf[n++] = '}';
	buf[n] = '\0';
	return buf;
}

static const char *
tristate(int v)
{
	return v < 0 ? NULL : v ? "t" : "f";
}

void
tables_row(const struct event *ev, struct table_row *row)
{
	static const char *const calls[] = { NULL, "open", "update", "resolve" };
	static const char *const acks[] = { NULL, "ack", "resolve" };
	static const char *const needs[] = { NULL, "open", "assign", "deliver", "cancel" };
	static const char *const outcomes[] = { NULL, "reached", "no_answer", "needs_help",
						"counselling" };
	static const char *const dropoffs[] = { NULL, "placed", "collected" };
	const char **v = row->v;

	memset(row->v, 0, sizeof(row->v));
	normalize_format_time(ev->device_us, row->ts, sizeof(row->ts));
	normalize_format_time(ev->received_us, row->rx, sizeof(row->rx));
	v[0] = ev->key;
	v[1] = ev->site;
	switch (ev->type) {
	case EVENT_GATE:
		v[2] = ev->gate;
		v[3] = row->ts;
		v[4] = row->rx;
		v[5] = nonempty(ev->card);
		v[6] = nonempty(ev->person);
		v[7] = ev->direction == DIR_IN ? "in" : ev->direction == DIR_OUT ? "out" : NULL;
		v[8] = temp_text(ev, row->temp, sizeof(row->temp));
		v[9] = tristate(ev->mask);
		v[10] = flags_text(ev, row->flags, sizeof(row->flags));
		v[11] = ev->vendor;
		break;
	case EVENT_STATUS:
		v[2] = ev->gate;
		v[3] = row->ts;
		v[4] = row->rx;
		v[5] = normalize_state_name(ev->state);
		v[6] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_DISINFECTION:
		v[2] = ev->zone;
		v[3] = row->ts;
		v[4] = row->rx;
		v[5] = nonempty(ev->crew);
		v[6] = nonempty(ev->text);
		v[7] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_HOTLINE:
		v[2] = ev->call_id;
		v[3] = calls[ev->call <= CALL_RESOLVE ? ev->call : 0];
		v[4] = row->ts;
		v[5] = row->rx;
		v[6] = nonempty(ev->household);
		v[7] = nonempty(ev->category);
		v[8] = tristate(ev->urgent);
		v[9] = nonempty(ev->text);
		v[10] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_CHECK:
		v[2] = ev->household;
		v[3] = nonempty(ev->person);
		v[4] = row->ts;
		v[5] = row->rx;
		v[6] = temp_text(ev, row->temp, sizeof(row->temp));
		v[7] = list_text(ev->text, row->list, sizeof(row->list));
		v[8] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_ACK:
		v[2] = ev->alert_id;
		v[3] = ev->by;
		v[4] = acks[ev->ack <= ACK_RESOLVE ? ev->ack : 0];
		v[5] = nonempty(ev->text);
		v[6] = row->ts;
		v[7] = row->rx;
		break;
	case EVENT_NEED:
		v[2] = ev->need_id;
		v[3] = needs[ev->need <= NEED_CANCEL ? ev->need : 0];
		v[4] = row->ts;
		v[5] = row->rx;
		v[6] = nonempty(ev->household);
		v[7] = nonempty(ev->category);
		if (ev->due_us) {
			normalize_format_time(ev->due_us, row->due, sizeof(row->due));
			v[8] = row->due;
		}
		v[9] = nonempty(ev->by);
		v[10] = nonempty(ev->call_id);
		v[11] = nonempty(ev->text);
		v[12] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_CALL:
		v[2] = ev->household;
		v[3] = row->ts;
		v[4] = row->rx;
		v[5] = nonempty(ev->by);
		v[6] = outcomes[ev->outcome <= OUTCOME_COUNSELLING ? ev->outcome : 0];
		v[7] = nonempty(ev->text);
		v[8] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	case EVENT_DROPOFF:
		v[2] = ev->household;
		v[3] = row->ts;
		v[4] = row->rx;
		v[5] = nonempty(ev->category);
		v[6] = dropoffs[ev->dropoff <= DROPOFF_COLLECTED ? ev->dropoff : 0];
		v[7] = nonempty(ev->by);
		v[8] = nonempty(ev->text);
		v[9] = flags_text(ev, row->flags, sizeof(row->flags));
		break;
	}
	{
		const struct table_desc *t = tables_for(ev->type);
		size_t n = (size_t)snprintf(row->hash, sizeof(row->hash), "\\x");

		for (size_t i = 0; i < NORM_HASH_LEN; i++)
			n += (size_t)snprintf(row->hash + n, sizeof(row->hash) - n, "%02x",
					      ev->content_hash[i]);
		if (t)
			v[t->ncols - 1] = row->hash;
	}
}

/* ---- the content hash ---- */

/* The serialisation that tables_content_hash() hashes. Sized for the
 * longest event: every string field at its limit, and the integers. */
struct content_buf {
	uint8_t b[16 * (NORM_ID_MAX + 1) + 2 * (NORM_TEXT_MAX + 1) + 128];
	size_t n;
};

/* A string with its NUL: no two sequences of strings serialise alike. */
static void
put_str(struct content_buf *c, const char *s)
{
	size_t len = strlen(s) + 1;

	if (c->n + len <= sizeof(c->b)) {
		memcpy(c->b + c->n, s, len);
		c->n += len;
	}
}

/* An integer as 8 bytes, little-endian whatever the host. */
static void
put_int(struct content_buf *c, int64_t v)
{
	uint64_t u = (uint64_t)v;

	if (c->n + 8 <= sizeof(c->b))
		for (int i = 0; i < 8; i++)
			c->b[c->n++] = (uint8_t)(u >> (8 * i));
}

void
tables_content_hash(const struct event *ev, uint8_t ret[NORM_HASH_LEN])
{
	struct content_buf c;
	XXH128_canonical_t h;

	c.n = 0;
	put_int(&c, 1); /* the serialisation's version */
	put_int(&c, ev->type);
	put_str(&c, ev->site);
	/* The device's time; none when the event has the receive time
	 * instead (FLAG_TS_RECEIVED: a will, a DIY reading without ts). */
	put_int(&c, (ev->flags & FLAG_TS_RECEIVED) ? INT64_MIN : ev->device_us);
	put_int(&c, ev->flags & ~(unsigned)(FLAG_CLOCK_SKEW | FLAG_TS_RECEIVED));
	switch (ev->type) {
	case EVENT_GATE:
		put_str(&c, ev->gate);
		put_str(&c, ev->card);
		put_str(&c, ev->person);
		put_int(&c, ev->direction);
		put_int(&c, ev->temp_dc);
		put_int(&c, ev->mask);
		put_str(&c, ev->vendor ? ev->vendor : "");
		break;
	case EVENT_STATUS:
		put_str(&c, ev->gate);
		put_int(&c, ev->state);
		break;
	case EVENT_DISINFECTION:
		put_str(&c, ev->zone);
		put_str(&c, ev->crew);
		put_str(&c, ev->text);
		break;
	case EVENT_HOTLINE:
		put_str(&c, ev->call_id);
		put_int(&c, ev->call);
		put_str(&c, ev->household);
		put_str(&c, ev->category);
		put_int(&c, ev->urgent);
		put_str(&c, ev->text);
		break;
	case EVENT_CHECK:
		put_str(&c, ev->household);
		put_str(&c, ev->person);
		put_int(&c, ev->temp_dc);
		put_str(&c, ev->text);
		break;
	case EVENT_ACK:
		put_str(&c, ev->alert_id);
		put_str(&c, ev->by);
		put_int(&c, ev->ack);
		put_str(&c, ev->text);
		break;
	case EVENT_NEED:
		put_str(&c, ev->need_id);
		put_int(&c, ev->need);
		put_str(&c, ev->household);
		put_str(&c, ev->category);
		put_int(&c, ev->due_us);
		put_str(&c, ev->by);
		put_str(&c, ev->call_id);
		put_str(&c, ev->text);
		break;
	case EVENT_CALL:
		put_str(&c, ev->household);
		put_str(&c, ev->by);
		put_int(&c, ev->outcome);
		put_str(&c, ev->text);
		break;
	case EVENT_DROPOFF:
		put_str(&c, ev->household);
		put_str(&c, ev->category);
		put_int(&c, ev->dropoff);
		put_str(&c, ev->by);
		put_str(&c, ev->text);
		break;
	}
	XXH128_canonicalFromHash(&h, XXH3_128bits(c.b, c.n));
	memcpy(ret, h.digest, NORM_HASH_LEN);
}
