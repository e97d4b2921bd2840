/* tables.c - the event tables (sql/0001, sql/0002) seen from the store:
 * column lists, idempotent insert statements, and an event's values. */
#include "tables.h"

#include <stdio.h>
#include <string.h>

#define STAGE(t, cols) \
	"INSERT INTO " t " (" cols ") SELECT " cols " FROM stage_" t \
	" ON CONFLICT (event_key) DO NOTHING"

#define GATE_COLS "event_key, site, gate, ts, received_at, card, person, direction, " \
	"temp_c, mask, flags, vendor"
#define STATUS_COLS "event_key, site, gate, ts, received_at, state, flags"
#define DISINF_COLS "event_key, site, zone, ts, received_at, crew, agent, flags"
#define HOTLINE_COLS "event_key, site, call_id, action, ts, received_at, household, " \
	"category, urgent, note, flags"
#define CHECK_COLS "event_key, site, household, person, ts, received_at, temp_c, " \
	"symptoms, flags"
#define ACK_COLS "event_key, site, alert_id, by_whom, action, note, ts, received_at"

/* New hotline steps (only those not seen before: RETURNING of the
 * idempotent insert) fold into one row per call. */
#define HOTLINE_FOLD(source) \
	"INSERT INTO hotline_calls (call_id, site, household, category, urgent, status," \
	" opened_at, resolved_at, updated_at)" \
	" SELECT call_id, site," \
	" (array_agg(household ORDER BY ts DESC) FILTER (WHERE household IS NOT NULL))[1]," \
	" (array_agg(category ORDER BY ts DESC) FILTER (WHERE category IS NOT NULL))[1]," \
	" (array_agg(urgent ORDER BY ts DESC) FILTER (WHERE urgent IS NOT NULL))[1]," \
	" CASE WHEN bool_or(action = 'resolve') THEN 'resolved' ELSE 'open' END," \
	" min(ts) FILTER (WHERE action = 'open'), max(ts) FILTER (WHERE action = 'resolve')," \
	" max(ts) FROM " source " GROUP BY site, call_id" \
	" ON CONFLICT (site, call_id) DO UPDATE SET" \
	" household = coalesce(excluded.household, hotline_calls.household)," \
	" category = coalesce(excluded.category, hotline_calls.category)," \
	" urgent = CASE WHEN excluded.updated_at >= hotline_calls.updated_at" \
	"   THEN coalesce(excluded.urgent, hotline_calls.urgent)" \
	"   ELSE coalesce(hotline_calls.urgent, excluded.urgent) END," \
	" status = CASE WHEN hotline_calls.status = 'resolved' OR excluded.status = 'resolved'" \
	"   THEN 'resolved' ELSE 'open' END," \
	" opened_at = least(hotline_calls.opened_at, excluded.opened_at)," \
	" resolved_at = greatest(hotline_calls.resolved_at, excluded.resolved_at)," \
	" updated_at = greatest(hotline_calls.updated_at, excluded.updated_at)"

#define ONE(t, cols, params) \
	"INSERT INTO " t " (" cols ") VALUES (" params ") ON CONFLICT (event_key) DO NOTHING"

static const struct table_desc descs[] = {
	{ EVENT_GATE, "gate_events", GATE_COLS, 12, STAGE("gate_events", GATE_COLS),
	  ONE("gate_events", GATE_COLS, "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12"), 1 },
	{ EVENT_STATUS, "gate_status", STATUS_COLS, 7, STAGE("gate_status", STATUS_COLS),
	  ONE("gate_status", STATUS_COLS, "$1, $2, $3, $4, $5, $6, $7"), 1 },
	{ EVENT_DISINFECTION, "disinfections", DISINF_COLS, 8,
	  STAGE("disinfections", DISINF_COLS),
	  ONE("disinfections", DISINF_COLS, "$1, $2, $3, $4, $5, $6, $7, $8"), 1 },
	{ EVENT_HOTLINE, "hotline_events", HOTLINE_COLS, 11,
	  "WITH new AS (" STAGE("hotline_events", HOTLINE_COLS) " RETURNING *) "
	  HOTLINE_FOLD("new"),
	  "WITH new AS (" ONE("hotline_events", HOTLINE_COLS,
			      "$1, $2, $3, $4, $5::timestamptz, $6, $7, $8, $9::boolean, $10, $11")
	  " RETURNING *) " HOTLINE_FOLD("new"), 0 },
	{ EVENT_CHECK, "isolation_checks", CHECK_COLS, 9, STAGE("isolation_checks", CHECK_COLS),
	  ONE("isolation_checks", CHECK_COLS, "$1, $2, $3, $4, $5, $6, $7, $8, $9"), 1 },
	{ EVENT_ACK, "acks", ACK_COLS, 8, STAGE("acks", ACK_COLS),
	  ONE("acks", ACK_COLS, "$1, $2, $3, $4, $5, $6, $7, $8"), 1 },
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
	normalize_format_temp(ev->temp_dc, buf, len);
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
	}
}
