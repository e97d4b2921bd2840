/* alert_state.c - the kinds table, the names of an alert's state, and the
 * rule state restored from PostgreSQL as typed rows (alert_state.h). */
#include "alert_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct alert_kind_info kinds[KIND_COUNT] = {
#define ALERT_KIND_INFO(id, n, sev, nn, t) \
	[KIND_##id] = { .name = n, .severity = sev, .noun = nn, .timer = t },
	ALERT_KINDS(ALERT_KIND_INFO)
#undef ALERT_KIND_INFO
};

static const char *const seen_names[SEEN_COUNT] = {
#define ALERT_SEEN_NAME(id, n) [SEEN_##id] = n,
	ALERT_SEEN(ALERT_SEEN_NAME)
#undef ALERT_SEEN_NAME
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const severity_names[] = {
	[SEVERITY_INFO] = "info",
	[SEVERITY_WARNING] = "warning",
	[SEVERITY_CRITICAL] = "critical",
};

static const char *const state_names[] = {
	[ALERT_RAISED] = "raised",
	[ALERT_ACKED] = "acked",
	[ALERT_RESOLVED] = "resolved",
};

/* The index of `name` in names[0..n), or -EINVAL. */
static int
lookup(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -EINVAL;
}

const struct alert_kind_info *
alert_state_kind(enum alert_kind k)
{
	return &kinds[k < KIND_COUNT ? k : 0];
}

const char *
alert_state_kind_name(enum alert_kind k)
{
	return k < KIND_COUNT ? kinds[k].name : "?";
}

int
alert_state_kind_from_name(const char *name)
{
	for (int k = 0; k < KIND_COUNT; k++)
		if (strcmp(kinds[k].name, name) == 0)
			return k;
	return -EINVAL;
}

const char *
alert_state_severity_name(enum alert_severity s)
{
	return (unsigned)s < COUNT(severity_names) ? severity_names[s] : "info";
}

int
alert_state_severity_from_name(const char *name)
{
	return lookup(severity_names, COUNT(severity_names), name);
}

const char *
alert_state_name(enum alert_state s)
{
	return (unsigned)s < COUNT(state_names) ? state_names[s] : "raised";
}

int
alert_state_from_name(const char *name)
{
	return lookup(state_names, COUNT(state_names), name);
}

bool
alert_state_is_instance_kind(enum alert_kind k)
{
	return k == KIND_BACKLOG || k == KIND_CLIENT_ID_CONFLICT;
}

bool
alert_state_is_aggregate(const struct alert *a)
{
	return strcmp(a->subject, ALERT_AGGREGATE) == 0;
}

const char *
alert_state_seen_name(enum alert_seen_what w)
{
	return w < SEEN_COUNT ? seen_names[w] : "?";
}

int
alert_state_seen_from_name(const char *name)
{
	return lookup(seen_names, SEEN_COUNT, name);
}

/* ---- the rule state restored at start (SPEC G3) ---- */

/* A stored event's rule time (normalize.c, norm_finish_event): its device
 * time, or its receive time when the device clock was off. */
#define RULE_TIME(t) \
	"CASE WHEN 'clock_skew' = ANY(" t ".flags) THEN " t ".received_at ELSE " t ".ts END"

/* Each statement comes twice: for every site (F = ALL_SITES) and for the
 * sites of a list (F = SEEN_SITES or ALERTS_SITES: a clustered instance's shard taken
 * over, docs/scaling.md). F(col) is what each branch's WHERE adds. */
#define ALL_SITES(col) ""
#define SEEN_SITES(col) " AND " col " = ANY($1::text[])"
#define ALERTS_SITES(col) " AND " col " = ANY($2::text[])"

/* A household's latest card_exception alert (rules.c, card_exception),
 * whatever its state: what was raised for it, and whether that situation
 * is over. */
#define CARDX_SQL_TEXT(F)                                                                       \
	" UNION ALL SELECT 'card_exception', site, household, sub, at FROM (SELECT DISTINCT ON" \
	" (site, household) site, household, alert_id || ' ' || event_key || ' ' || (state ="   \
	" 'resolved' AND reason IN ('register corrected', 'check off'))::int::text AS sub,"     \
	" (extract(epoch FROM raised_at) * 1e6)::bigint AS at FROM alerts"                      \
	" WHERE kind = 'card_exception' AND subject <> '*' AND household IS NOT NULL" F(        \
		"site") " ORDER BY site, household, raised_at DESC, alert_id DESC) x"
/* The people work (issue 16, rules.c): the open and assigned needs (their
 * open, category, due and latest assignment: one row each), the needs
 * done in the last day (the last 20,000, RULES_NEEDS_MAX: a late step of
 * one does not follow it again); each household's latest welfare call
 * that reached it, of the last two days; the deliveries placed in the last
 * 7 days and not collected since (by rule time), and each household's
 * latest collection. */
#define PEOPLE_SEEN_SQL(F)                                                                                                                                                                                                                             \
	" UNION ALL SELECT 'need_open', site, need_id, coalesce(household, ''),"                                                                                                                                                                       \
	" (extract(epoch FROM opened_at) * 1e6)::bigint FROM needs"                                                                                                                                                                                    \
	" WHERE status IN ('open', 'assigned') AND opened_at IS NOT NULL" F(                                                                                                                                                                           \
		"site") " UNION ALL SELECT 'need_category', site, need_id, category, 0 FROM needs"                                                                                                                                                     \
			" WHERE status IN ('open', 'assigned') AND category IS NOT NULL" F(                                                                                                                                                            \
				"site") " UNION ALL SELECT 'need_due', site, need_id, '', (extract(epoch FROM due) * 1e6)::bigint"                                                                                                                     \
					" FROM needs WHERE status IN ('open', 'assigned') AND due IS NOT NULL" F(                                                                                                                                      \
						"site") " UNION ALL SELECT 'need_assigned', site, need_id, '',"                                                                                                                                        \
							" (extract(epoch FROM assigned_at) * 1e6)::bigint FROM needs"                                                                                                                                  \
							" WHERE status = 'assigned' AND assigned_at IS NOT NULL" F(                                                                                                                                    \
								"site") " UNION ALL SELECT * FROM (SELECT 'need_done', site, need_id, '',"                                                                                                             \
									" (extract(epoch FROM coalesce(delivered_at, cancelled_at)) * 1e6)::bigint FROM needs"                                                                                         \
									" WHERE status IN ('delivered', 'cancelled') AND updated_at > now() - interval '1 day'" F(                                                                                     \
										"site") " ORDER BY updated_at DESC LIMIT 20000) nd"                                                                                                                    \
											" UNION ALL SELECT 'welfare_reached', w.site, w.household, '',"                                                                                                \
											" (extract(epoch FROM max(" RULE_TIME(                                                                                                                         \
												"w") ")) * 1e6)::bigint FROM welfare_calls w"                                                                                                          \
												     " WHERE w.outcome <> 'no_answer' AND w.received_at > now() - interval '2 days'" F(                                                                \
													     "w.site") " GROUP BY w.site, w.household"                                                                                                 \
														       " UNION ALL SELECT 'dropoff_collected', c.site, c.household, '',"                                                               \
														       " (extract(epoch FROM max(" RULE_TIME(                                                                                          \
															       "c") ")) * 1e6)::bigint FROM dropoffs c"                                                                                \
																    " WHERE c.action = 'collected' AND c.received_at > now() - interval '7 days'" F(                                   \
																	    "c.site") " GROUP BY c.site, c.household"                                                                  \
																		      " UNION ALL SELECT 'dropoff_placed', p.site, p.household, coalesce(p.item, ''),"                 \
																		      " (extract(epoch FROM " RULE_TIME(                                                               \
																			      "p") ") * 1e6)::bigint FROM dropoffs p"                                                  \
																				   " WHERE p.action = 'placed' AND p.received_at > now() - interval '7 days'" F(       \
																					   "p.site") " AND NOT EXISTS (SELECT 1 FROM dropoffs c WHERE c.site = p.site" \
																						     " AND c.household = p.household AND c.action = 'collected'"       \
																						     " AND " RULE_TIME("c") " >= " RULE_TIME(                          \
																							     "p") ")"

/* The resolved calls: the last RULES_RESOLVED_MAX (rules.c) of them. A
 * sealed gate's latest `closed` and latest breach (a status open or
 * forced, a pass) received in the last 30 days, of gates registered
 * sealed: two rows at most per gate (rules.c, struct seal). */
#define SEEN_SQL_TEXT(F)                                                                                                                                                                                                                                            \
	"SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint"                                                                                                                                                                       \
	" FROM gate_events WHERE received_at > now() - interval '1 day'" F(                                                                                                                                                                                         \
		"site") " GROUP BY site, gate"                                                                                                                                                                                                                      \
			" UNION ALL SELECT 'gate', site, gate, '', (extract(epoch FROM max(received_at)) * 1e6)::bigint"                                                                                                                                            \
			" FROM gate_status WHERE received_at > now() - interval '1 day'" F(                                                                                                                                                                         \
				"site") " GROUP BY site, gate"                                                                                                                                                                                                      \
					" UNION ALL SELECT 'zone', site, zone, '', (extract(epoch FROM max(ts)) * 1e6)::bigint"                                                                                                                                     \
					" FROM disinfections WHERE ts > now() - interval '7 days'" F(                                                                                                                                                               \
						"site") " GROUP BY site, zone"                                                                                                                                                                                      \
							" UNION ALL SELECT 'check', site, household, coalesce(person, ''),"                                                                                                                                         \
							" (extract(epoch FROM max(ts)) * 1e6)::bigint"                                                                                                                                                              \
							" FROM isolation_checks WHERE ts > now() - interval '60 days'" F(                                                                                                                                           \
								"site") " GROUP BY site, household, person"                                                                                                                                                         \
									" UNION ALL SELECT 'check', site, household, '', (extract(epoch FROM max(ts)) * 1e6)::bigint"                                                                                               \
									" FROM isolation_checks WHERE ts > now() - interval '60 days'" F(                                                                                                                           \
										"site") " GROUP BY site, household"                                                                                                                                                 \
											" UNION ALL SELECT 'call', site, call_id, coalesce(category, ''),"                                                                                                          \
											" (extract(epoch FROM opened_at) * 1e6)::bigint"                                                                                                                            \
											" FROM hotline_calls WHERE status = 'open' AND urgent AND opened_at IS NOT NULL" F(                                                                                         \
												"site") " UNION ALL SELECT * FROM (SELECT 'call_resolved', site, call_id, '',"                                                                                      \
													" (extract(epoch FROM coalesce(resolved_at, updated_at)) * 1e6)::bigint"                                                                                    \
													" FROM hotline_calls WHERE status = 'resolved'" F(                                                                                                          \
														"site") " ORDER BY coalesce(resolved_at, updated_at) DESC LIMIT 10000) r"                                                                           \
															" UNION ALL SELECT * FROM (SELECT 'exit', g.site, c.household, '',"                                                                         \
															" (extract(epoch FROM g.ts) * 1e6)::bigint"                                                                                                 \
															" FROM gate_events g JOIN cards c ON c.site = g.site AND c.card = g.card"                                                                   \
															" WHERE g.direction = 'out' AND NOT c.extra AND g.ts > now() - interval '7 days'" F(                                                        \
																"g.site") " ORDER BY g.ts) e"                                                                                                       \
																	  " UNION ALL SELECT CASE WHEN s.state = 'closed' THEN 'seal_closed' ELSE 'seal_breach' END,"                               \
																	  " s.site, s.gate, '', (extract(epoch FROM max(" RULE_TIME(                                                                \
																		  "s") ")) * 1e6)::bigint"                                                                                          \
																		       " FROM gates g JOIN gate_status s ON s.site = g.site AND s.gate = g.gate"                                    \
																		       " WHERE g.state = 'sealed' AND s.state IN ('closed', 'open', 'forced')"                                      \
																		       " AND s.received_at > now() - interval '30 days'" F(                                                         \
																			       "s.site") " GROUP BY 1, s.site, s.gate"                                                              \
																					 " UNION ALL SELECT 'seal_breach', e.site, e.gate, '',"                                     \
																					 " (extract(epoch FROM max(" RULE_TIME(                                                     \
																						 "e") ")) * 1e6)::bigint"                                                           \
																						      " FROM gates g JOIN gate_events e ON e.site = g.site AND e.gate = g.gate"     \
																						      " WHERE g.state = 'sealed' AND e.received_at > now() - interval '30 days'" F( \
																							      "e.site") " GROUP BY e.site, e.gate" PEOPLE_SEEN_SQL(F)               \
																							      CARDX_SQL_TEXT(                                                       \
																								      F)

/* The open alerts: aggregates first, then the oldest $1 of each site and
 * kind (the bound, and as many again to fold at most in one pass; the
 * last column says whether a site and kind has more). */
#define ALERTS_SQL_TEXT(F)                                                                         \
	"SELECT alert_id, site, kind, severity, state, subject, event_key, coalesce(gate, ''),"    \
	" coalesce(household, ''), coalesce(card, ''), coalesce(zone, ''), coalesce(call_id, '')," \
	" coalesce((temp_c * 10)::int, -32768), (extract(epoch FROM raised_at) * 1e6)::bigint,"    \
	" (extract(epoch FROM updated_at) * 1e6)::bigint, count, coalesce(reason, ''),"            \
	" coalesce(by_whom, ''), coalesce(distinct_subjects, 0), coalesce(sample, ''),"            \
	" (total > $1)::int FROM (SELECT *, row_number() OVER w AS rank, count(*) OVER"            \
	" (PARTITION BY site, kind, subject = '*') AS total FROM alerts"                           \
	" WHERE state <> 'resolved'" F(                                                            \
		"site") " WINDOW w AS (PARTITION BY site, kind,"                                   \
			" subject = '*' ORDER BY raised_at, alert_id)) a WHERE rank <= $1"         \
			" ORDER BY subject = '*' DESC, raised_at, alert_id"

const char alert_state_seen_sql[] = SEEN_SQL_TEXT(ALL_SITES);
const char alert_state_alerts_sql[] = ALERTS_SQL_TEXT(ALL_SITES);
const char alert_state_seen_sites_sql[] = SEEN_SQL_TEXT(SEEN_SITES);
const char alert_state_alerts_sites_sql[] = ALERTS_SQL_TEXT(ALERTS_SITES);

int
alert_state_parse_alert(const char *const *v, size_t ncols, struct alert *ret, bool *ret_more)
{
	int kind, severity, state;
	struct alert a;

	if (ncols != ALERT_STATE_ALERT_COLS || (kind = alert_state_kind_from_name(v[2])) < 0 ||
	    (severity = alert_state_severity_from_name(v[3])) < 0 ||
	    (state = alert_state_from_name(v[4])) < 0 || state == ALERT_RESOLVED)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	snprintf(a.alert_id, sizeof(a.alert_id), "%s", v[0]);
	snprintf(a.site, sizeof(a.site), "%s", v[1]);
	a.kind = (enum alert_kind)kind;
	a.severity = (enum alert_severity)severity;
	a.state = (enum alert_state)state;
	snprintf(a.subject, sizeof(a.subject), "%s", v[5]);
	snprintf(a.event_key, sizeof(a.event_key), "%s", v[6]);
	snprintf(a.gate, sizeof(a.gate), "%s", v[7]);
	snprintf(a.household, sizeof(a.household), "%s", v[8]);
	snprintf(a.card, sizeof(a.card), "%s", v[9]);
	snprintf(a.zone, sizeof(a.zone), "%s", v[10]);
	snprintf(a.call_id, sizeof(a.call_id), "%s", v[11]);
	a.temp_dc = (int16_t)atoi(v[12]);
	a.raised_us = strtoll(v[13], NULL, 10);
	a.updated_us = strtoll(v[14], NULL, 10);
	a.count = (uint32_t)strtoul(v[15], NULL, 10);
	snprintf(a.reason, sizeof(a.reason), "%s", v[16]);
	snprintf(a.by, sizeof(a.by), "%s", v[17]);
	a.distinct = (uint32_t)strtoul(v[18], NULL, 10);
	snprintf(a.sample, sizeof(a.sample), "%s", v[19]);
	*ret_more = atoi(v[20]) != 0;
	*ret = a;
	return 0;
}

int
alert_state_parse_seen(const char *const *v, size_t ncols, struct alert_seen *ret)
{
	int what;

	if (ncols != ALERT_STATE_SEEN_COLS || (what = alert_state_seen_from_name(v[0])) < 0)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->what = (enum alert_seen_what)what;
	snprintf(ret->site, sizeof(ret->site), "%s", v[1]);
	snprintf(ret->id, sizeof(ret->id), "%s", v[2]);
	snprintf(ret->sub, sizeof(ret->sub), "%s", v[3]);
	ret->at_us = strtoll(v[4], NULL, 10);
	return 0;
}
