/* notifier_text.h - what the people in a group read (issue 17): one
 * template per alert kind, in zh-CN and en, and the rendering of a
 * message (one alert or a group of them) for a receiver's style.
 *
 * Privacy (SPEC 3): only the fields of struct notifier_alert are used, and
 * those carry ids (household, gate, card, person ids, hashed ID numbers),
 * never a name, phone number or ID number. The alert's `text` (cordond's
 * English sentence) is shown only for a kind without a row, in en.
 * docs/notify.md, "Messages", lists the table; test_notifier_text checks
 * that it does, word for word. */
#ifndef CORDON_NOTIFIER_TEXT_H
#define CORDON_NOTIFIER_TEXT_H

#include <stddef.h>

#include "notifier.h"

/* One row of the template table: the kind, and in each language its
 * short name (a group's title counts by it), what happened and what to
 * do.
 *
 * `what` is text with {placeholders}: {gate} {household} {building}
 * {card} {zone} {call} {temp} (e.g. "38.6°C") {count} (only when more
 * than 1) {person} {need} {instance} {receiver} {subject} {kind}. Each is
 * the alert's field, or the id of its subject of that shape
 * ("household:3-2-401" gives {household} "3-2-401" when the field is
 * null; "person:P-7" gives {person}). A part in [brackets] is dropped
 * when a placeholder in it has no value, separators and all: "发热[ {temp}]
 * [，门岗 {gate}]" gives "发热，门岗 G03" without a reading. Brackets
 * do not nest. */
struct notifier_template {
	const char *kind;
	const char *label[2]; /* [LANG_ZH_CN], [LANG_EN] */
	const char *what[2];
	const char *todo[2];
};

/* The table, ending with a row whose kind is NULL. Every kind of
 * ALERT_KINDS (alert_state.h) has a row, and notify_failed (cordon-notify's
 * own: subject "receiver:<name>"). */
extern const struct notifier_template notifier_templates[];

/* The row of `kind`, or NULL for a kind without one (a newer cordond's:
 * rendered from the generic fields). */
const struct notifier_template *notifier_template_find(const char *kind);

/* Renders `m` for a receiver of language `lang` and style `style`. Its
 * items' alerts are as notifier_alert_from_json gives them: alert_id,
 * kind, site, subject and severity set.
 *
 * *ret_title is one line (the mail subject, DingTalk's markdown title):
 * for one alert "[s1] 新告警 · 发热（紧急）"; for a group the count per
 * kind, the gate or building all share, and the span of their raised_at,
 * e.g. "[s1] 门岗 G01 1 分钟内 3 条发热告警" / "[s1] 3 fever alerts at
 * gate G01 in the last minute".
 *
 * *ret_body is the message: STYLE_TEXT the title, then one line each;
 * STYLE_MARKDOWN the same with a bold title and a critical severity in
 * WeCom's <font color="warning">; STYLE_SMS one paragraph; STYLE_MAIL the
 * lines without the title (it is the subject). A group gives one short
 * line per alert, the most severe first, then "…另有 N 条" / "… and N more"
 * for those cut. The body is at most `max_bytes` bytes (0: no limit), cut
 * after a whole line (or SMS part), the ending included; a first line
 * longer than that is cut at a UTF-8 boundary and ends in "…".
 *
 * Times are in the site's zone from `zone(zarg, site)` (UTC when `zone`
 * is NULL or gives NULL), as "2026-12-01 10:32 (+08:00)". Both strings
 * malloc'ed, NUL-terminated, valid UTF-8 when the alert's strings are.
 * Returns 0, -EINVAL for a message without items, or -ENOMEM. */
int notifier_render(const struct notifier_message *m, enum notifier_lang lang,
		    enum notifier_style style, size_t max_bytes, notifier_zone_fn *zone, void *zarg,
		    char **ret_title, char **ret_body) __attribute__((warn_unused_result));

/* The words of `alert`, an alert as its MQTT message gives it
 * (docs/topics.md, "Outbound"; parsed as notifier_alert_from_json does),
 * in both languages: {"zh-CN":{"label","what","todo"},"en":{…}}. label is
 * the kind's short name, what the filled what-line (the same expansion
 * notifier_render uses; an aggregate's count, cordond's `text` in en for a
 * kind without a row), todo what to do. A new reference, or NULL when the
 * alert does not parse or memory ran out. (cordon-web: docs/web.md,
 * "Alerts".) */
json_t *notifier_texts_json(const json_t *alert);

#endif
