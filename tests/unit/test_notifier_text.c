/* Unit tests of cordon-notify's texts (notifier_text.c): a row for every
 * kind, every placeholder filled and gone cleanly when empty, the cut to
 * max_bytes at whole lines and UTF-8 boundaries, group titles, the
 * site's time zone, zh-CN without English words and en without Chinese,
 * and docs/notify.md (argv[1]) showing the table word for word. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alert_state.h"
#include "notifier_text.h"
#include "tz.h"

static const char *docs_path;

#define RAISED_MS 1796092320000LL /* 2026-12-01T02:32:00Z: 10:32 in Shanghai */

static struct tz *shanghai;

static const struct tz *
zone_of(void *arg, const char *site)
{
	(void)arg;
	(void)site;
	return shanghai;
}

static const char *const kinds[] = {
#define KIND_NAME(id, name, severity, noun, timer) name,
	ALERT_KINDS(KIND_NAME)
#undef KIND_NAME
		"notify_failed",
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static const enum notifier_style styles[] = { STYLE_TEXT, STYLE_MARKDOWN, STYLE_SMS, STYLE_MAIL };

/* The values of the alert with every field set, by placeholder. */
static const struct {
	const char *name, *value;
} all_values[] = {
	{ "gate", "G03" },	     { "household", "3-2-401" },
	{ "building", "3" },	     { "card", "C-0412" },
	{ "zone", "Z07" },	     { "call", "H-7" },
	{ "temp", "38.6°C" },	     { "count", "5" },
	{ "person", "P-7" },	     { "need", "N-12" },
	{ "instance", "cordond-1" }, { "receiver", "wecom-1" },
};

static const char *
value_of(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(all_values) / sizeof(all_values[0]); i++)
		if (strlen(all_values[i].name) == n && memcmp(all_values[i].name, name, n) == 0)
			return all_values[i].value;
	return NULL;
}

/* The subject of `kind` as docs/alerts.md gives it, from the values above
 * (or digits only, for the test of the Chinese). */
static const char *
subject_of(const char *kind, bool digits)
{
	static const struct {
		const char *kind, *subject, *digits;
	} s[] = {
		{ "fever", "person:P-7", "person:7" },
		{ "isolation_overdue", "person:P-7", "person:7" },
		{ "isolation_symptom", "person:P-7", "person:7" },
		{ "sealed_gate", "gate:G03", "gate:03" },
		{ "gate_silent", "gate:G03", "gate:03" },
		{ "unknown_card", "card:C-0412", "card:0412" },
		{ "disinfection_overdue", "zone:Z07", "zone:07" },
		{ "hotline_unresolved", "call:H-7", "call:7" },
		{ "backlog", "instance:cordond-1", "instance:1" },
		{ "client_id_conflict", "instance:cordond-1", "instance:1" },
		{ "need_overdue", "need:N-12", "need:12" },
		{ "notify_failed", "receiver:wecom-1", "receiver:1" },
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (strcmp(s[i].kind, kind) == 0)
			return digits ? s[i].digits : s[i].subject;
	return "household:3-2-401"; /* digits and dashes either way */
}

static struct notifier_alert
alert_full(const char *kind)
{
	return (struct notifier_alert){
		.alert_id = "0f3c9e0d5b1a47c2a8e1f6d4c3b2a190",
		.kind = kind,
		.severity = "critical",
		.state = "raised",
		.transition = "raised",
		.site = "s1",
		.subject = subject_of(kind, false),
		.gate = "G03",
		.household = "3-2-401",
		.building = "3",
		.card = "C-0412",
		.zone = "Z07",
		.call_id = "H-7",
		.text = "SECRET cordond sentence",
		.temp_c = 38.6,
		.has_temp = true,
		.raised_at_ms = RAISED_MS,
		.count = 5,
	};
}

/* Only what notifier_alert_from_json requires. */
static struct notifier_alert
alert_bare(const char *kind)
{
	return (struct notifier_alert){
		.alert_id = "0f3c9e0d5b1a47c2a8e1f6d4c3b2a190",
		.kind = kind,
		.severity = "warning",
		.state = "raised",
		.transition = "raised",
		.site = "s1",
		.subject = subject_of(kind, false),
		.count = 1,
	};
}

struct out {
	char *title, *body;
};

static struct out
render(const struct notifier_item *items, size_t n, enum notifier_transition tr,
       enum notifier_lang lang, enum notifier_style style, size_t max, int64_t now_ms)
{
	struct notifier_message m = { .id = 1,
				      .route = "default",
				      .transition = tr,
				      .items = items,
				      .nitems = n,
				      .now_ms = now_ms };
	struct out o = { 0 };

	assert_int_equal(notifier_render(&m, lang, style, max, zone_of, NULL, &o.title, &o.body),
			 0);
	assert_non_null(o.title);
	assert_non_null(o.body);
	assert_null(strchr(o.title, '\n'));
	return o;
}

static struct out
render_one(const struct notifier_alert *a, enum notifier_transition tr, enum notifier_lang lang,
	   enum notifier_style style)
{
	struct notifier_item item = { tr, *a };

	return render(&item, 1, tr, lang, style, 0, RAISED_MS + 45 * 60000);
}

static void
out_free(struct out *o)
{
	free(o->title);
	free(o->body);
}

/* Whether `s` is valid UTF-8 (no overlongs, no surrogates). */
static bool
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, n;
		uint32_t cp;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* Whether `s` holds a CJK character or full-width punctuation. */
static bool
has_cjk(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		uint32_t cp;

		if ((p[0] & 0xf0) != 0xe0)
			continue;
		cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
		if ((cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xff00 && cp <= 0xffef))
			return true;
	}
	return false;
}

/* No unfilled placeholder, no "(null)", no double space, no line that
 * ends or starts in a separator, no two separators in a row. */
static void
assert_clean(const char *s)
{
	static const char *const bad[] = { "{",	   "}",	  "(null)", "  ",  "，，", "，\n",
					   "：\n", ",\n", " \n",    "\n ", ", ,",  "，）",
					   "（，", ",)",  "(,",	    "， ", " ，",  "[]" };
	size_t len = strlen(s);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(s, bad[i])) {
			fprintf(stderr, "'%s' in:\n%s\n", bad[i], s);
			fail();
		}
	assert_true(utf8_valid(s));
	if (len > 0 && (s[len - 1] == ' ' || s[len - 1] == ','))
		fail_msg("ends in a separator: %s", s);
	if (len >= 3 && strcmp(s + len - 3, "，") == 0)
		fail_msg("ends in a separator: %s", s);
}

/* Every kind of ALERT_KINDS, and notify_failed, has a row with both
 * languages; the table has no other row. */
static void
every_kind_has_a_row(void **state)
{
	size_t rows = 0;

	(void)state;
	for (size_t k = 0; k < NKINDS; k++) {
		const struct notifier_template *t = notifier_template_find(kinds[k]);

		if (!t)
			fprintf(stderr, "no template for kind %s\n", kinds[k]);
		assert_non_null(t);
		for (int l = 0; l < 2; l++) {
			assert_true(t->label[l] && *t->label[l]);
			assert_true(t->what[l] && *t->what[l]);
			assert_true(t->todo[l] && *t->todo[l]);
		}
	}
	for (const struct notifier_template *t = notifier_templates; t->kind; t++)
		rows++;
	assert_int_equal(rows, NKINDS);
	assert_null(notifier_template_find("no_such_kind"));
}

/* With every field set, each placeholder of each template shows its
 * value; with only the required fields the text is still clean. */
static void
placeholders_fill(void **state)
{
	(void)state;
	for (const struct notifier_template *t = notifier_templates; t->kind; t++) {
		for (int l = 0; l < 2; l++) {
			struct notifier_alert full = alert_full(t->kind),
					      bare = alert_bare(t->kind);
			struct out o =
				render_one(&full, NTR_RAISED, (enum notifier_lang)l, STYLE_TEXT);

			for (const char *p = strchr(t->what[l], '{'); p; p = strchr(p + 1, '{')) {
				const char *close = strchr(p, '}');
				const char *v = value_of(p + 1, (size_t)(close - p - 1));

				assert_non_null(v);
				if (!strstr(o.body, v))
					fail_msg("%s %s: {%.*s} (%s) not in\n%s", t->kind,
						 l ? "en" : "zh", (int)(close - p - 1), p + 1, v,
						 o.body);
			}
			assert_clean(o.body);
			assert_clean(o.title);
			assert_null(strstr(o.body, "SECRET"));
			assert_null(strstr(o.title, "SECRET"));
			assert_non_null(strstr(o.body, t->todo[l]));
			assert_non_null(strstr(o.title, t->label[l]));
			out_free(&o);

			for (size_t s = 0; s < sizeof(styles) / sizeof(styles[0]); s++) {
				for (int tr = 0; tr < NTR_COUNT; tr++) {
					o = render_one(&bare, (enum notifier_transition)tr,
						       (enum notifier_lang)l, styles[s]);
					assert_clean(o.body);
					assert_clean(o.title);
					out_free(&o);
					o = render_one(&full, (enum notifier_transition)tr,
						       (enum notifier_lang)l, styles[s]);
					assert_clean(o.body);
					assert_clean(o.title);
					out_free(&o);
				}
			}
		}
	}
}

/* Each of `o`'s parts is at most `max` bytes and valid UTF-8. */
static void
assert_fits(const char *body, size_t max)
{
	if (strlen(body) > max)
		fail_msg("%zu bytes > %zu:\n%s", strlen(body), max, body);
	assert_true(utf8_valid(body));
}

static struct notifier_item *
fevers(size_t n, const char *gate)
{
	struct notifier_item *items = calloc(n, sizeof(*items));
	static char cards[200][32], households[200][32];

	assert_non_null(items);
	assert_true(n <= 200);
	for (size_t i = 0; i < n; i++) {
		snprintf(cards[i], sizeof(cards[i]), "C-%04zu", i);
		snprintf(households[i], sizeof(households[i]), "3-2-%zu", 100 + i);
		items[i].transition = NTR_RAISED;
		items[i].alert = alert_full("fever");
		items[i].alert.subject = "card:x";
		items[i].alert.gate = gate;
		items[i].alert.card = cards[i];
		items[i].alert.household = households[i];
		items[i].alert.building = i % 2 ? "3" : "4";
		items[i].alert.severity = i % 3 ? "warning" : "critical";
		items[i].alert.temp_c = i % 3 ? 37.6 : 38.9;
		items[i].alert.raised_at_ms = RAISED_MS + (int64_t)i * 500; /* 50 s in all */
	}
	return items;
}

/* Bodies cut at every size from 1 byte up: never longer, valid UTF-8,
 * and a group's ending counts exactly the items left out. */
static void
cut_at_every_size(void **state)
{
	struct notifier_item *items = fevers(12, "G01");
	struct notifier_alert one = alert_full("isolation_breach");
	struct notifier_item single = { NTR_RAISED, one };

	(void)state;
	for (int l = 0; l < 2; l++) {
		for (size_t s = 0; s < sizeof(styles) / sizeof(styles[0]); s++) {
			struct out whole = render(items, 12, NTR_RAISED, (enum notifier_lang)l,
						  styles[s], 0, 0);
			struct out whole1 = render(&single, 1, NTR_RAISED, (enum notifier_lang)l,
						   styles[s], 0, 0);
			size_t len = strlen(whole.body), len1 = strlen(whole1.body);

			for (size_t max = 1; max <= len + 8; max++) {
				struct out o = render(items, 12, NTR_RAISED, (enum notifier_lang)l,
						      styles[s], max, 0);

				assert_fits(o.body, max);
				if (max >= len)
					assert_string_equal(o.body, whole.body);
				if (styles[s] == STYLE_TEXT && max < len && strlen(o.body) > 0) {
					/* The lines shown and the N of the ending: 12. */
					const char *item = l ? "\n- " : "\n· ";
					const char *more = l ? "… and " : "…另有 ";
					const char *e = strstr(o.body, more);
					size_t shown = 0;

					for (const char *p = strstr(o.body, item); p;
					     p = strstr(p + 1, item))
						shown++;
					if (e)
						assert_int_equal(
							shown + strtoul(e + strlen(more), NULL, 10),
							12);
					else /* the title itself cut */
						assert_int_equal(shown, 0);
				}
				out_free(&o);
			}
			for (size_t max = 1; max <= len1 + 8; max++) {
				struct out o = render(&single, 1, NTR_RAISED, (enum notifier_lang)l,
						      styles[s], max, 0);

				assert_fits(o.body, max);
				if (max >= len1)
					assert_string_equal(o.body, whole1.body);
				else if (max >= 3)
					assert_non_null(strstr(o.body, "…"));
				out_free(&o);
			}
			out_free(&whole);
			out_free(&whole1);
		}
	}
	/* Too little room for the to-do and an alert: the alert, not the to-do. */
	struct out whole = render(items, 12, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT, 0, 0);
	char *l1 = strchr(whole.body, '\n'), *l2 = strchr(l1 + 1, '\n'), *l3 = strchr(l2 + 1, '\n');
	char *want;

	assert_true(strncmp(l1, "\n处理：", strlen("\n处理：")) == 0);
	assert_true(asprintf(&want, "%.*s%.*s\n…另有 11 条", (int)(l1 - whole.body), whole.body,
			     (int)(l3 - l2), l2) > 0);
	struct out o = render(items, 12, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT, strlen(want), 0);
	assert_string_equal(o.body, want);
	out_free(&o);
	o = render(items, 12, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT, strlen(want) + (size_t)(l2 - l1),
		   0);
	assert_non_null(strstr(o.body, "处理："));
	assert_non_null(strstr(o.body, "…另有 11 条"));
	out_free(&o);
	out_free(&whole);
	free(want);
	free(items);
}

/* 100 fevers at gate G01 within a minute: the title names 100 and G01,
 * the body fits WeCom's 2048 bytes of text and 4096 of markdown. */
static void
group_of_100(void **state)
{
	struct notifier_item *items = fevers(100, "G01");
	struct out o;

	(void)state;
	o = render(items, 100, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT, 2048, 0);
	assert_string_equal(o.title, "[s1] 门岗 G01 1 分钟内 100 条发热告警");
	assert_fits(o.body, 2048);
	assert_true(strncmp(o.body, o.title, strlen(o.title)) == 0);
	assert_non_null(strstr(o.body, "处理：请立即安排复测体温"));
	assert_non_null(strstr(o.body, "…另有 "));
	/* The most severe first: the first line is a critical one. */
	assert_non_null(strstr(o.body, "\n· 10:32 紧急 发热 38.9°C，门岗 G01"));
	out_free(&o);
	o = render(items, 100, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT, 0, 0);
	assert_null(strstr(strstr(o.body, "警告 发热"), "紧急"));
	assert_non_null(strstr(o.body, "\n· 10:32 警告 发热 37.6°C，门岗 G01，楼栋 3，户 3-2-101"));
	out_free(&o);

	o = render(items, 100, NTR_RAISED, LANG_EN, STYLE_TEXT, 2048, 0);
	assert_string_equal(o.title, "[s1] 100 fever alerts at gate G01 in the last minute");
	assert_fits(o.body, 2048);
	assert_non_null(strstr(o.body, "… and "));
	out_free(&o);

	o = render(items, 100, NTR_RAISED, LANG_ZH_CN, STYLE_MARKDOWN, 4096, 0);
	assert_fits(o.body, 4096);
	assert_true(strncmp(o.body, "**[s1] 门岗 G01 1 分钟内 100 条发热告警**", 10) == 0);
	assert_non_null(strstr(o.body, "- 10:32 <font color=\"warning\">紧急</font> 发热"));
	out_free(&o);

	/* Two kinds, no common gate, ten minutes: counted per kind. */
	items[1].alert.kind = "unknown_card";
	items[1].alert.gate = "G02";
	items[2].alert.raised_at_ms = RAISED_MS + 10 * 60000;
	o = render(items, 3, NTR_RESOLVED, LANG_ZH_CN, STYLE_TEXT, 0, 0);
	assert_string_equal(o.title, "[s1] 【已解除】10 分钟内 3 条告警：发热 2 条，未登记卡 1 条");
	out_free(&o);
	o = render(items, 3, NTR_RESOLVED, LANG_EN, STYLE_TEXT, 0, 0);
	assert_string_equal(o.title,
			    "[s1] Resolved: 3 alerts within 10 min: 2 fever, 1 unknown card");
	out_free(&o);
	/* A common building when the gates differ. */
	items[0].alert.building = "3";
	items[2].alert.building = "3";
	items[1].alert.building = "3";
	o = render(items, 3, NTR_RAISED, LANG_EN, STYLE_TEXT, 0, 0);
	assert_string_equal(o.title,
			    "[s1] 3 alerts in building 3 within 10 min: 2 fever, 1 unknown card");
	out_free(&o);
	free(items);
}

/* The time in the site's zone; UTC without one. */
static void
times_in_site_zone(void **state)
{
	struct notifier_alert a = alert_full("fever");
	struct notifier_item item = { NTR_RAISED, a };
	struct notifier_message m = { .transition = NTR_RAISED, .items = &item, .nitems = 1 };
	char *title, *body;

	(void)state;
	struct out o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "时间：2026-12-01 10:32 (+08:00)"));
	out_free(&o);
	assert_int_equal(notifier_render(&m, LANG_EN, STYLE_TEXT, 0, NULL, NULL, &title, &body), 0);
	assert_non_null(strstr(body, "2026-12-01 02:32 (+00:00)"));
	free(title);
	free(body);
}

/* What each transition says. */
static void
transitions(void **state)
{
	struct notifier_alert a = alert_full("fever");
	struct out o;

	(void)state;
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT);
	assert_string_equal(o.title, "[s1] 新告警 · 发热（紧急）");
	assert_string_equal(o.body,
			    "[s1] 新告警 · 发热（紧急）\n"
			    "发热 38.6°C，门岗 G03，楼栋 3，户 3-2-401，人员 P-7，卡 C-0412，"
			    "共 5 次\n"
			    "小区：s1\n"
			    "时间：2026-12-01 10:32 (+08:00)\n"
			    "处理：请立即安排复测体温；复测仍发热的，联系社区医生并上报街道");
	out_free(&o);
	o = render_one(&a, NTR_UPDATED, LANG_ZH_CN, STYLE_TEXT);
	assert_string_equal(o.title, "[s1] 升级为紧急 · 发热（紧急）");
	out_free(&o);
	o = render_one(&a, NTR_REMIND, LANG_ZH_CN, STYLE_TEXT);
	assert_string_equal(o.title, "[s1] 提醒：仍未确认，已 45 分钟 · 发热（紧急）");
	assert_non_null(strstr(o.body, "\n已持续 45 分钟，仍未确认\n"));
	out_free(&o);
	o = render_one(&a, NTR_ESCALATE, LANG_ZH_CN, STYLE_TEXT);
	assert_string_equal(o.title, "[s1] 升级通知：45 分钟未确认 · 发热（紧急）");
	assert_non_null(strstr(o.body, "已持续 45 分钟，仍未确认，现通知上一级"));
	out_free(&o);
	o = render_one(&a, NTR_ESCALATE, LANG_EN, STYLE_TEXT);
	assert_string_equal(o.title,
			    "[s1] Escalation: not acknowledged for 45 min · fever (critical)");
	out_free(&o);

	a.reason = "rechecked";
	a.by = "op-7";
	a.resolved_at_ms = RAISED_MS + 80 * 60000;
	o = render_one(&a, NTR_RESOLVED, LANG_ZH_CN, STYLE_TEXT);
	assert_string_equal(o.title, "[s1] 已解除 · 发热（紧急）");
	assert_non_null(
		strstr(o.body, "\n已解除：2026-12-01 11:52 (+08:00)，原因：复测正常，处理人 op-7"));
	assert_null(strstr(o.body, "处理："));
	out_free(&o);
	o = render_one(&a, NTR_RESOLVED, LANG_EN, STYLE_TEXT);
	assert_non_null(
		strstr(o.body, "\nResolved 2026-12-01 11:52 (+08:00), reason: rechecked, by op-7"));
	out_free(&o);

	/* 2 h 5 min */
	struct notifier_item item = { NTR_REMIND, a };
	o = render(&item, 1, NTR_REMIND, LANG_EN, STYLE_TEXT, 0, RAISED_MS + 125 * 60000);
	assert_non_null(strstr(o.body, "Open for 2 h 5 min, not acknowledged"));
	out_free(&o);
}

/* Styles: WeCom markdown, one SMS paragraph, a mail body without the
 * title. */
static void
styles_differ(void **state)
{
	struct notifier_alert a = alert_full("sealed_gate");
	struct out o;

	(void)state;
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_MARKDOWN);
	assert_true(strncmp(o.body, "**[s1] 新告警 · 封闭门岗通行（紧急）**\n\n", 10) == 0);
	assert_non_null(strstr(o.body, "<font color=\"warning\">紧急</font> 封闭门岗有人通行"));
	out_free(&o);
	a.severity = "warning";
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_MARKDOWN);
	assert_null(strstr(o.body, "<font"));
	out_free(&o);
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_SMS);
	assert_null(strchr(o.body, '\n'));
	assert_true(strncmp(o.body, "[s1] 新告警 · 封闭门岗通行（警告）；", 10) == 0);
	out_free(&o);
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_MAIL);
	assert_string_equal(o.title, "[s1] 新告警 · 封闭门岗通行（警告）");
	assert_true(strncmp(o.body, "封闭门岗有人通行，门岗 G03", 20) == 0);
	out_free(&o);
}

/* zh-CN: no ASCII letter but in values inserted (here all digits) and
 * °C; en: no Chinese. */
static void
languages_clean(void **state)
{
	static const char *const reasons[] = { "rechecked", "operator", "checked in", "re-sealed",
					       "nothing folded for 1 h" };

	(void)state;
	for (const struct notifier_template *t = notifier_templates; t->kind; t++) {
		struct notifier_alert d = {
			.alert_id = "1",
			.kind = t->kind,
			.severity = "critical",
			.state = "raised",
			.transition = "raised",
			.site = "1",
			.subject = subject_of(t->kind, true),
			.gate = "03",
			.household = "3-2-401",
			.building = "3",
			.card = "0412",
			.zone = "07",
			.call_id = "7",
			.by = "7",
			.temp_c = 38.6,
			.has_temp = true,
			.raised_at_ms = RAISED_MS,
			.count = 3,
			.resolved_at_ms = RAISED_MS + 60000,
		};
		struct notifier_alert agg = d;

		agg.subject = "*";
		agg.distinct = 8214;
		for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
			struct notifier_item items[2] = { { NTR_RESOLVED, d },
							  { NTR_RESOLVED, agg } };

			items[0].alert.reason = reasons[r];
			items[1].alert.reason = reasons[r];
			for (size_t s = 0; s < sizeof(styles) / sizeof(styles[0]); s++) {
				if (styles[s] == STYLE_MARKDOWN) /* its HTML tags */
					continue;
				for (int tr = 0; tr < NTR_COUNT; tr++) {
					for (size_t n = 1; n <= 2; n++) {
						struct out o = render(items + (n == 1 ? r % 2 : 0),
								      n,
								      (enum notifier_transition)tr,
								      LANG_ZH_CN, styles[s], 0,
								      RAISED_MS + 3600000);
						char *all;

						assert_true(asprintf(&all, "%s\n%s", o.title,
								     o.body) > 0);
						for (char *c = strstr(all, "°C"); c;
						     c = strstr(c, "°C"))
							memcpy(c, "°c", strlen("°c"));
						for (const char *c = all; *c; c++)
							if ((*c >= 'A' && *c <= 'Z') ||
							    (*c >= 'a' && *c <= 'z' && *c != 'c'))
								fail_msg("%s zh: '%c' in\n%s",
									 t->kind, *c, all);
						free(all);
						out_free(&o);
						o = render(items + (n == 1 ? r % 2 : 0), n,
							   (enum notifier_transition)tr, LANG_EN,
							   styles[s], 0, RAISED_MS + 3600000);
						if (has_cjk(o.title) || has_cjk(o.body))
							fail_msg("%s en:\n%s\n%s", t->kind, o.title,
								 o.body);
						out_free(&o);
					}
				}
			}
		}
	}
}

/* An aggregate says how many; a kind without a row (a newer cordond)
 * still renders, cordond's sentence only in en. */
static void
aggregate_and_unknown(void **state)
{
	struct notifier_alert a = alert_bare("unknown_card");
	struct out o;

	(void)state;
	a.subject = "*";
	a.distinct = 8214;
	a.count = 9000;
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "未登记卡：超出未关闭告警上限，另有 8214 张卡"));
	assert_non_null(strstr(o.title, "另有 8214 张卡"));
	assert_clean(o.body);
	out_free(&o);
	o = render_one(&a, NTR_RAISED, LANG_EN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "unknown card: 8214 cards past the bound of open alerts"));
	out_free(&o);
	a.kind = "card_exception";
	a.distinct = 1443;
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "另有 1443 户"));
	out_free(&o);

	a = alert_bare("water_leak");
	a.gate = "G05";
	a.text = "Water leak at gate G05";
	o = render_one(&a, NTR_RAISED, LANG_EN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "\nWater leak at gate G05\n"));
	assert_non_null(strstr(o.title, "water_leak"));
	out_free(&o);
	o = render_one(&a, NTR_RAISED, LANG_ZH_CN, STYLE_TEXT);
	assert_null(strstr(o.body, "Water leak"));
	assert_non_null(strstr(o.body, "\n告警类型 water_leak，门岗 G05，户 3-2-401"));
	assert_non_null(strstr(o.title, "其他告警"));
	assert_clean(o.body);
	out_free(&o);
	a.text = NULL;
	o = render_one(&a, NTR_RAISED, LANG_EN, STYLE_TEXT);
	assert_non_null(strstr(o.body, "\nAlert water_leak at gate G05, household 3-2-401"));
	out_free(&o);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* docs/notify.md's "## Messages" shows every row word for word. */
static void
documented(void **state)
{
	char *doc = read_all(docs_path);
	char *sec = strstr(doc, "\n## Messages\n"), *end;

	(void)state;
	assert_non_null(sec);
	end = strstr(sec + 1, "\n## ");
	if (end)
		*end = '\0';
	for (const struct notifier_template *t = notifier_templates; t->kind; t++) {
		char kind[64];

		snprintf(kind, sizeof(kind), "| `%s` |", t->kind);
		if (!strstr(sec, kind))
			fail_msg("docs/notify.md: no row %s", kind);
		for (int l = 0; l < 2; l++) {
			const char *need[] = { t->label[l], t->what[l], t->todo[l] };

			for (size_t i = 0; i < 3; i++)
				if (!strstr(sec, need[i]))
					fail_msg("docs/notify.md, Messages: no \"%s\"", need[i]);
		}
	}
	free(doc);
}

/* notifier_texts_json (cordon-web's words of an alert): a fever with its
 * reading and gate filled into both languages from the same table; a kind
 * without a row gives the generic words (cordond's sentence in en); an
 * alert that does not parse gives NULL. */
static void
texts_json(void **state)
{
	json_t *fever, *other, *t;
	const struct notifier_template *row = notifier_template_find("fever");

	(void)state;
	fever = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:i}", "alert_id",
			  "0f3c9e0d5b1a47c2a8e1f6d4c3b2a190", "kind", "fever", "severity",
			  "critical", "state", "raised", "transition", "raised", "site", "s1",
			  "subject", "person:P-7", "gate", "G03", "temp_c", 38.6, "count", 1);
	assert_non_null(fever);
	t = notifier_texts_json(fever);
	assert_non_null(t);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(t, "zh-CN"), "label")), "发热");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "zh-CN"), "what")),
			    "发热 38.6°C，门岗 G03，人员 P-7");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "en"), "what")),
			    "Fever 38.6°C at gate G03, person P-7");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "en"), "label")),
			    row->label[LANG_EN]);
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "en"), "todo")),
			    row->todo[LANG_EN]);
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "zh-CN"), "todo")),
			    row->todo[LANG_ZH_CN]);
	assert_int_equal(json_object_size(t), 2);
	json_decref(t);

	other = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "alert_id", "a2", "kind",
			  "brand_new_kind", "severity", "warning", "state", "raised", "transition",
			  "raised", "site", "s1", "subject", "gate:G09", "gate", "G09", "text",
			  "A newer cordond's sentence");
	assert_non_null(other);
	t = notifier_texts_json(other);
	assert_non_null(t);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(t, "zh-CN"), "label")),
		"其他告警");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "zh-CN"), "what")),
			    "告警类型 brand_new_kind，门岗 G09，对象 G09");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "zh-CN"), "todo")),
			    "请登录管理台查看详情");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "en"), "label")),
			    "brand_new_kind");
	assert_string_equal(json_string_value(json_object_get(json_object_get(t, "en"), "what")),
			    "A newer cordond's sentence");
	json_decref(t);

	json_object_del(other, "kind");
	assert_null(notifier_texts_json(other));
	assert_null(notifier_texts_json(NULL));
	json_decref(other);
	json_decref(fever);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_kind_has_a_row),
		cmocka_unit_test(placeholders_fill),
		cmocka_unit_test(cut_at_every_size),
		cmocka_unit_test(group_of_100),
		cmocka_unit_test(times_in_site_zone),
		cmocka_unit_test(transitions),
		cmocka_unit_test(styles_differ),
		cmocka_unit_test(languages_clean),
		cmocka_unit_test(aggregate_and_unknown),
		cmocka_unit_test(documented),
		cmocka_unit_test(texts_json),
	};
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s docs/notify.md\n", argv[0]);
		return 2;
	}
	docs_path = argv[1];
	if (tz_load("Asia/Shanghai", &shanghai) != 0) {
		fprintf(stderr, "no Asia/Shanghai in the system's zoneinfo\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	tz_free(shanghai);
	return rc;
}
