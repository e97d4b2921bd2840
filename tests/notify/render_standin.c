/* render_standin.c - TEST-ONLY stand-in for notifier_render (notifier_text.c),
 * so that send_probe links and runs before the real renderer lands. It is
 * a weak symbol: the probe links every object of the notifier library
 * (meson extract_all_objects), so once src/notifier_text.c defines
 * notifier_render, the real one wins and this one is unused. Delete this
 * file then. Its text: a title "[site] N× kind 告警/alert (transition)" and
 * one line per alert, cut at max_bytes on a UTF-8 boundary. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_text.h"

__attribute__((weak)) int
notifier_render(const struct notifier_message *m, enum notifier_lang lang,
		enum notifier_style style, size_t max_bytes, notifier_zone_fn *zone, void *zarg,
		char **ret_title, char **ret_body)
{
	char *title = NULL, *body = NULL;
	size_t len = 0, cap = 0;
	FILE *f;

	(void)zone;
	(void)zarg;
	if (asprintf(&title, "[%s] %zu× %s %s (%s)", m->items[0].alert.site, m->nitems,
		     m->items[0].alert.kind, lang == LANG_EN ? "alert" : "告警",
		     notifier_transition_name(m->transition)) < 0)
		return -ENOMEM;
	f = open_memstream(&body, &cap);
	if (!f) {
		free(title);
		return -ENOMEM;
	}
	if (style == STYLE_MARKDOWN)
		fprintf(f, "### %s\n", title);
	for (size_t i = 0; i < m->nitems; i++) {
		const struct notifier_alert *a = &m->items[i].alert;

		fprintf(f, "%s %s %s %s%s%s\n", a->severity, a->kind, a->subject,
			a->gate ? "gate " : "", a->gate ? a->gate : "", a->text ? "" : "");
		if (a->text)
			fprintf(f, "%s\n", a->text);
	}
	fclose(f);
	len = strlen(body);
	if (len > max_bytes) {
		len = max_bytes;
		while (len && ((unsigned char)body[len] & 0xc0) == 0x80)
			len--;
		body[len] = '\0';
	}
	*ret_title = title;
	*ret_body = body;
	return 0;
}
