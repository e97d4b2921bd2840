/* notifier_text.h - what the people in a group read (issue 17): one
 * template per alert kind, in zh-CN and en, and the rendering of a
 * message (one alert or a group of them) for a receiver's style.
 *
 * Privacy (SPEC 3): only the fields of struct notifier_alert are used, and
 * those carry ids (household, gate, card, person ids, hashed ID numbers),
 * never a name, phone number or ID number. docs/notify.md lists the table. */
#ifndef CORDON_NOTIFIER_TEXT_H
#define CORDON_NOTIFIER_TEXT_H

#include <stddef.h>

#include "notifier.h"

/* One row of the template table: the kind, and in each language what
 * happened ({placeholders} filled from the alert) and what to do. */
struct notifier_template {
	const char *kind;
	const char *what[2]; /* [LANG_ZH_CN], [LANG_EN] */
	const char *todo[2];
};

/* The table, ending with a row whose kind is NULL. Every kind of
 * ALERT_KINDS (alert_state.h) has a row, and notify_failed. */
extern const struct notifier_template notifier_templates[];

/* Renders `m` for a receiver of language `lang` and style `style`:
 * *ret_title one line (the mail subject, DingTalk's markdown title), e.g.
 * "[s1] 3 fevers at gate G01 in the last minute"; *ret_body the message,
 * at most `max_bytes` bytes (cut at a UTF-8 boundary on a whole line, with
 * "... and N more"). Times are in the site's zone from `zone` (UTC when it
 * gives NULL). Both malloc'ed. Returns 0 or -ENOMEM. */
int notifier_render(const struct notifier_message *m, enum notifier_lang lang,
		    enum notifier_style style, size_t max_bytes, notifier_zone_fn *zone, void *zarg,
		    char **ret_title, char **ret_body) __attribute__((warn_unused_result));

#endif
