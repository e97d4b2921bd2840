/* notifier_text.c - the templates and the rendering (notifier_text.h).
 * Pure: no I/O; the realtime clock only when a message gives no now_ms. */
#include "notifier_text.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert_state.h"
#include "tz.h"

/* The table. docs/notify.md ("Messages") shows every row word for word
 * (test_notifier_text checks it): change both together. */
const struct notifier_template notifier_templates[] = {
	{ "fever",
	  { "发热", "fever" },
	  { "发热[ {temp}][，门岗 {gate}][，楼栋 {building}][，户 {household}][，人员 {person}][，卡 {card}][，共 {count} 次]",
	    "Fever[ {temp}][ at gate {gate}][, building {building}][, household {household}][, person {person}][, card {card}][, {count} readings]" },
	  { "请立即安排复测体温；复测仍发热的，联系社区医生并上报街道",
	    "Have the temperature taken again at once; if still feverish, call the community doctor and report to the sub-district office" } },
	{ "isolation_overdue",
	  { "隔离打卡逾期", "isolation check overdue" },
	  { "隔离人员未按时打卡[，人员 {person}][，户 {household}]",
	    "Isolation check overdue[ for {person}][ of household {household}]" },
	  { "请电话联系该户，确认身体状况并督促完成健康打卡",
	    "Call the household, ask how they are and have them do the health check" } },
	{ "isolation_symptom",
	  { "隔离人员有症状", "isolation symptoms" },
	  { "隔离人员报告身体不适[，体温 {temp}][，楼栋 {building}][，户 {household}][，人员 {person}]",
	    "Symptoms reported in isolation[, {temp}][, building {building}][, household {household}][, person {person}]" },
	  { "请联系该户了解症状，必要时安排社区医生上门",
	    "Call the household about the symptoms; send the community doctor if needed" } },
	{ "isolation_breach",
	  { "隔离户外出", "isolation breach" },
	  { "隔离期间外出[，楼栋 {building}][，户 {household}][，卡 {card}][，门岗 {gate}]",
	    "Went out during isolation[, building {building}][, household {household}][, card {card}][ at gate {gate}]" },
	  { "请立即联系该户核实情况并劝返，同时上报街道",
	    "Call the household at once, have the person return home and report to the sub-district office" } },
	{ "sealed_gate",
	  { "封闭门岗通行", "sealed gate traffic" },
	  { "封闭门岗有人通行[，门岗 {gate}][，户 {household}][，卡 {card}]",
	    "Traffic at a sealed gate[ {gate}][, household {household}][, card {card}]" },
	  { "请立即派人到该门岗查看，确认门已关闭锁好",
	    "Send someone to the gate at once and make sure it is closed and locked" } },
	{ "gate_silent",
	  { "门岗设备无消息", "gate terminal silent" },
	  { "门岗设备长时间没有消息[，门岗 {gate}]",
	    "No message from the gate terminal[ {gate}] for a while" },
	  { "请检查该门岗设备的电源和网络，修复前改为人工登记",
	    "Check the terminal's power and network; register passes by hand until it is back" } },
	{ "unknown_card",
	  { "未登记卡", "unknown card" },
	  { "未登记或已注销的卡刷卡[，卡 {card}][，门岗 {gate}]",
	    "Unregistered or revoked card[ {card}][ at gate {gate}]" },
	  { "请门岗核实持卡人身份，确认后登记或收回该卡",
	    "Have the gate check who holds the card, then register or withdraw it" } },
	{ "exit_quota",
	  { "外出超次数", "exit quota exceeded" },
	  { "外出次数超过规定[，户 {household}][，门岗 {gate}]",
	    "Went out more often than allowed[, household {household}][ at gate {gate}]" },
	  { "请联系该户了解外出原因，提醒遵守出入规定",
	    "Call the household about the outings and remind them of the rules" } },
	{ "disinfection_overdue",
	  { "消杀逾期", "disinfection overdue" },
	  { "区域[ {zone} ]未按时消杀", "Zone[ {zone}] not disinfected within its interval" },
	  { "请尽快安排人员完成消杀并登记", "Have the zone disinfected soon and record it" } },
	{ "hotline_unresolved",
	  { "热线紧急求助未办结", "urgent hotline call open" },
	  { "热线紧急求助仍未办结[，来电 {call}][，户 {household}]",
	    "Urgent hotline call[ {call}][ from household {household}] still unresolved" },
	  { "请立即回电并安排人员处理，办结后在系统中结单",
	    "Call back at once, send help and close the call when done" } },
	{ "backlog",
	  { "告警服务积压", "backlog" },
	  { "告警服务[ {instance} ]数据积压或数据库不可用",
	    "The alert service[ {instance}] has a backlog or cannot write to its database" },
	  { "请通知系统运维人员检查磁盘和数据库，期间告警照常发出",
	    "Tell the system operator to check the disk and the database; alerts still go out meanwhile" } },
	{ "client_id_conflict",
	  { "连接编号冲突", "client id conflict" },
	  { "另一程序占用了告警服务[ {instance} ]的连接编号",
	    "Another program is using the client id of the alert service[ {instance}]" },
	  { "请通知系统运维人员排查重复部署，期间可能漏收消息",
	    "Tell the system operator to find the duplicate instance; messages may be lost meanwhile" } },
	{ "card_exception",
	  { "一户多卡", "too many cards" },
	  { "一户持有的普通卡超过规定数量[，户 {household}]",
	    "Household[ {household}] holds more ordinary cards than allowed" },
	  { "请核实该户持卡情况，注销多余的卡或登记为例外卡",
	    "Check the household's cards; revoke the extra one or register it as an exception" } },
	{ "need_overdue",
	  { "居民需求逾期", "need overdue" },
	  { "居民需求未按时派单或送达[，需求 {need}][，户 {household}]",
	    "Need[ {need}][ of household {household}] not assigned or delivered in time" },
	  { "请尽快安排志愿者跟进，并告知该户预计送达时间",
	    "Assign a volunteer soon and tell the household when to expect it" } },
	{ "call_missed",
	  { "关怀电话未接通", "welfare call missed" },
	  { "隔离户今日关怀电话未接通[，户 {household}]",
	    "Household[ {household}] under isolation not reached by today's welfare call" },
	  { "请再次致电该户，仍联系不上的请上门查看",
	    "Call the household again; if still unreachable, visit them" } },
	{ "dropoff_uncollected",
	  { "物资未取", "delivery uncollected" },
	  { "投放点物资长时间未取[，户 {household}]",
	    "Delivery[ for household {household}] not collected at the drop-off point" },
	  { "请联系该户取件，不便下楼的安排送上门",
	    "Call the household to collect it; bring it to the door if they cannot come down" } },
	{ "notify_failed",
	  { "通知发送失败", "notifications failing" },
	  { "告警通知持续发送失败[，渠道 {receiver}]",
	    "Notifications keep failing[ to receiver {receiver}]" },
	  { "请检查该渠道的地址、密钥和网络，恢复前请留意其他渠道的告警",
	    "Check the receiver's address, key and network; watch the other channels until it is back" } },
	{ NULL, { NULL, NULL }, { NULL, NULL }, { NULL, NULL } },
};

/* A kind without a row (a newer cordond): the generic fields. */
static const struct notifier_template generic = {
	"?",
	{ "其他告警", "alert" },
	{ "告警类型 {kind}[，门岗 {gate}][，楼栋 {building}][，户 {household}][，卡 {card}][，区域 {zone}][，来电 {call}][，对象 {subject}]",
	  "Alert {kind}[ at gate {gate}][, building {building}][, household {household}][, card {card}][, zone {zone}][, call {call}][, subject {subject}]" },
	{ "请登录管理台查看详情", "See the details in the console" },
};

/* What an aggregate's subjects are (alert_state.h's nouns). */
static const struct {
	const char *noun;
	const char *word[2];
} nouns[] = {
	{ "households", { "户", "households" } }, { "gates", { "个门岗", "gates" } },
	{ "cards", { "张卡", "cards" } },	  { "zones", { "个区域", "zones" } },
	{ "calls", { "个来电", "calls" } },	  { "needs", { "项需求", "needs" } },
};

static const struct {
	const char *kind, *noun;
} kind_nouns[] = {
#define KIND_NOUN(id, name, severity, noun, timer) { name, noun },
	ALERT_KINDS(KIND_NOUN)
#undef KIND_NOUN
};

/* cordond's reasons (docs/alerts.md) in Chinese; another is shown as is. */
static const struct {
	const char *reason, *zh;
} reasons[] = {
	{ "rechecked", "复测正常" },
	{ "operator", "人工解除" },
	{ "checked in", "已打卡" },
	{ "re-sealed", "门已重新关闭" },
	{ "message received", "设备恢复" },
	{ "window ended", "统计时段已过" },
	{ "disinfected", "已消杀" },
	{ "call resolved", "已办结" },
	{ "recovered", "已恢复" },
	{ "quiet", "已恢复正常" },
	{ "register corrected", "登记已更正" },
	{ "check off", "检查已关闭" },
	{ "register changed", "登记有变" },
	{ "delivered", "已送达" },
	{ "cancelled", "已取消" },
	{ "next day", "已到次日" },
	{ "reached", "已接通" },
	{ "order ended", "隔离已结束" },
	{ "collected", "已取件" },
	{ "nothing folded for 1 h", "1 小时内无新增" },
	{ "folded", "已并入汇总告警" },
};

const struct notifier_template *
notifier_template_find(const char *kind)
{
	for (const struct notifier_template *t = notifier_templates; kind && t->kind; t++)
		if (strcmp(t->kind, kind) == 0)
			return t;
	return NULL;
}

/* A value from the alert: control characters (a newline in an id) become
 * spaces, so a line stays one line. */
static void
sb_value(struct strbuf *b, const char *s)
{
	for (; *s; s++) {
		char c = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;

		strbuf_add(b, &c, 1);
	}
}

/* The id of `subject` when it has the shape "<prefix>:<id>". */
static const char *
subject_id(const char *subject, const char *prefix)
{
	size_t n = strlen(prefix);

	if (subject && strncmp(subject, prefix, n) == 0 && subject[n] == ':' && subject[n + 1])
		return subject + n + 1;
	return NULL;
}

/* The value of placeholder `name` (`n` bytes), NULL when the alert has
 * none; `buf` holds a number. */
static const char *
placeholder(const struct notifier_alert *a, const char *name, size_t n, char *buf, size_t len)
{
#define IS(word) (n == sizeof(word) - 1 && memcmp(name, word, n) == 0)
	if (IS("gate"))
		return a->gate ? a->gate : subject_id(a->subject, "gate");
	if (IS("household"))
		return a->household ? a->household : subject_id(a->subject, "household");
	if (IS("building"))
		return a->building;
	if (IS("card"))
		return a->card ? a->card : subject_id(a->subject, "card");
	if (IS("zone"))
		return a->zone ? a->zone : subject_id(a->subject, "zone");
	if (IS("call"))
		return a->call_id ? a->call_id : subject_id(a->subject, "call");
	if (IS("person"))
		return subject_id(a->subject, "person");
	if (IS("need"))
		return subject_id(a->subject, "need");
	if (IS("instance"))
		return subject_id(a->subject, "instance");
	if (IS("receiver"))
		return subject_id(a->subject, "receiver");
	if (IS("kind"))
		return a->kind;
	if (IS("subject")) {
		const char *colon = a->subject ? strchr(a->subject, ':') : NULL;

		if (!a->subject || strcmp(a->subject, ALERT_AGGREGATE) == 0)
			return NULL;
		return colon && colon[1] ? colon + 1 : a->subject;
	}
	if (IS("temp")) {
		if (!a->has_temp)
			return NULL;
		snprintf(buf, len, "%.1f°C", a->temp_c);
		return buf;
	}
	if (IS("count")) {
		if (a->count <= 1)
			return NULL;
		snprintf(buf, len, "%" PRId64, a->count);
		return buf;
	}
	return NULL;
#undef IS
}

/* Appends `tpl` filled from `a` (the syntax in notifier_text.h). */
static void
fill(struct strbuf *b, const char *tpl, const struct notifier_alert *a)
{
	const char *p = tpl;

	while (*p) {
		const char *end;
		bool optional = *p == '[';

		if (optional) {
			end = strchr(++p, ']');
			if (!end)
				end = p + strlen(p);
		} else {
			end = p + strcspn(p, "[");
		}
		/* The part [p, end): first whether each placeholder has a value. */
		bool complete = true;

		for (const char *q = p; q < end && complete; q++) {
			const char *close = *q == '{' ? memchr(q, '}', (size_t)(end - q)) : NULL;
			char num[32];

			if (close) {
				complete = placeholder(a, q + 1, (size_t)(close - q - 1), num,
						       sizeof(num)) != NULL;
				q = close;
			}
		}
		if (complete || !optional) {
			for (const char *q = p; q < end; q++) {
				const char *close = *q == '{' ? memchr(q, '}', (size_t)(end - q)) :
								NULL;
				char num[32];
				const char *v;

				if (!close) {
					strbuf_add(b, q, 1);
					continue;
				}
				v = placeholder(a, q + 1, (size_t)(close - q - 1), num,
						sizeof(num));
				if (v)
					sb_value(b, v);
				q = close;
			}
		}
		p = optional && *end ? end + 1 : end;
	}
}

static bool
uses(const char *tpl, const char *name)
{
	return strstr(tpl, name) != NULL;
}

static const char *
aggregate_noun(const char *kind, enum notifier_lang lang)
{
	const char *noun = "subjects";

	for (size_t i = 0; i < sizeof(kind_nouns) / sizeof(kind_nouns[0]); i++)
		if (strcmp(kind_nouns[i].kind, kind) == 0)
			noun = kind_nouns[i].noun;
	for (size_t i = 0; i < sizeof(nouns) / sizeof(nouns[0]); i++)
		if (strcmp(nouns[i].noun, noun) == 0)
			return nouns[i].word[lang];
	return lang == LANG_EN ? "subjects" : "个对象";
}

static bool
is_aggregate(const struct notifier_alert *a)
{
	return a->subject && strcmp(a->subject, ALERT_AGGREGATE) == 0;
}

static const struct notifier_template *
template_of(const struct notifier_alert *a)
{
	const struct notifier_template *t = notifier_template_find(a->kind);

	return t ? t : &generic;
}

static const char *
label_of(const struct notifier_alert *a, enum notifier_lang lang)
{
	const struct notifier_template *t = notifier_template_find(a->kind);

	if (t)
		return t->label[lang];
	return lang == LANG_EN ? a->kind : generic.label[LANG_ZH_CN];
}

/* The what-line of `a`. */
static void
what_line(struct strbuf *b, const struct notifier_alert *a, enum notifier_lang lang)
{
	const struct notifier_template *t = notifier_template_find(a->kind);

	if (is_aggregate(a)) {
		strbuf_puts(b, label_of(a, lang));
		if (lang == LANG_EN)
			strbuf_printf(b, ": %" PRId64 " %s past the bound of open alerts",
				      a->distinct > 0 ? a->distinct : a->count,
				      aggregate_noun(a->kind, lang));
		else
			strbuf_printf(b, "：超出未关闭告警上限，另有 %" PRId64 " %s",
				      a->distinct > 0 ? a->distinct : a->count,
				      aggregate_noun(a->kind, lang));
		return;
	}
	if (!t && lang == LANG_EN && a->text && *a->text) {
		sb_value(b, a->text);
		return;
	}
	fill(b, template_of(a)->what[lang], a);
}

/* The to-do line of `a`: its row's, or for an aggregate the one of every
 * aggregate (no placeholders in either). */
static const char *
todo_of(const struct notifier_alert *a, enum notifier_lang lang)
{
	if (is_aggregate(a))
		return lang == LANG_EN ? "Review them one by one in the console" :
					 "请登录管理台逐一查看处理";
	return template_of(a)->todo[lang];
}

static bool
critical(const struct notifier_alert *a)
{
	return a->severity && strcmp(a->severity, "critical") == 0;
}

static const char *
severity_word(const struct notifier_alert *a, enum notifier_lang lang)
{
	if (critical(a))
		return lang == LANG_EN ? "critical" : "紧急";
	if (a->severity && strcmp(a->severity, "info") == 0)
		return lang == LANG_EN ? "info" : "提示";
	return lang == LANG_EN ? "warning" : "警告";
}

static void
sb_severity(struct strbuf *b, const struct notifier_alert *a, enum notifier_lang lang,
	    enum notifier_style style)
{
	if (style == STYLE_MARKDOWN && critical(a)) {
		strbuf_puts(b, "<font color=\"warning\">");
		strbuf_puts(b, severity_word(a, lang));
		strbuf_puts(b, "</font>");
	} else {
		strbuf_puts(b, severity_word(a, lang));
	}
}

/* "1 h 5 min" / "1 小时 5 分钟"; at least a minute. */
static void
duration(struct strbuf *b, int64_t ms, enum notifier_lang lang)
{
	int64_t min = ms / 60000;

	if (min < 1)
		min = 1;
	if (min >= 60) {
		strbuf_printf(b, "%" PRId64 "%s", min / 60, lang == LANG_EN ? " h" : " 小时");
		if (min % 60 == 0)
			return;
		strbuf_puts(b, " ");
	}
	strbuf_printf(b, "%" PRId64 "%s", min % 60, lang == LANG_EN ? " min" : " 分钟");
}

struct render {
	const struct notifier_message *m;
	enum notifier_lang lang;
	enum notifier_style style;
	notifier_zone_fn *zone;
	void *zarg;
	int64_t now_ms;
};

static int32_t
offset_of(const struct render *r, const char *site, int64_t ms)
{
	const struct tz *tz = r->zone ? r->zone(r->zarg, site) : NULL;

	return tz ? tz_offset_at(tz, ms / 1000) : 0;
}

/* `ms` as local time of `site`: "2026-12-01 10:32 (+08:00)" (full), or
 * the "%m-%d %H:%M" / "%H:%M" of `fmt`. */
static void
local_time(struct strbuf *b, const struct render *r, const char *site, int64_t ms, const char *fmt)
{
	int32_t off = offset_of(r, site, ms);
	time_t t = (time_t)(ms / 1000 + off);
	struct tm tm;
	char buf[64];

	if (!gmtime_r(&t, &tm))
		return;
	if (fmt) {
		strftime(buf, sizeof(buf), fmt, &tm);
		strbuf_puts(b, buf);
		return;
	}
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M", &tm);
	strbuf_printf(b, "%s (%c%02d:%02d)", buf, off < 0 ? '-' : '+', abs(off) / 3600,
		      abs(off) % 3600 / 60);
}

static void
local_date(char *buf, size_t len, const struct render *r, const char *site, int64_t ms)
{
	time_t t = (time_t)(ms / 1000 + offset_of(r, site, ms));
	struct tm tm;

	if (gmtime_r(&t, &tm))
		strftime(buf, len, "%Y-%m-%d", &tm);
	else
		buf[0] = '\0';
}

/* The transition's word for a title: "新告警", "提醒：45 分钟未确认", … */
static void
transition_word(struct strbuf *b, const struct render *r, const struct notifier_alert *a)
{
	bool en = r->lang == LANG_EN;
	int64_t open = a && a->raised_at_ms ? r->now_ms - a->raised_at_ms : 0;

	switch (r->m->transition) {
	case NTR_RAISED: strbuf_puts(b, en ? "New alert" : "新告警"); break;
	case NTR_UPDATED: strbuf_puts(b, en ? "Now critical" : "升级为紧急"); break;
	case NTR_REMIND:
		strbuf_puts(b, en ? "Reminder: not acknowledged" : "提醒：仍未确认");
		if (open > 0) {
			strbuf_puts(b, en ? " for " : "，已 ");
			duration(b, open, r->lang);
		}
		break;
	case NTR_ESCALATE:
		strbuf_puts(b, en ? "Escalation: not acknowledged" : "升级通知：");
		if (open > 0) {
			strbuf_puts(b, en ? " for " : "");
			duration(b, open, r->lang);
			strbuf_puts(b, en ? "" : "未确认");
		} else if (!en) {
			strbuf_puts(b, "超时未确认");
		}
		break;
	case NTR_RESOLVED:
	default: strbuf_puts(b, en ? "Resolved" : "已解除"); break;
	}
}

static const char *
reason_word(const char *reason, enum notifier_lang lang)
{
	if (lang == LANG_EN)
		return reason;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reasons[i].reason, reason) == 0)
			return reasons[i].zh;
	return reason;
}

/* The parts of a body, each with the separator before it; the first
 * `head` are kept whole or cut, the others (a group's items) dropped from
 * the end with an ending that counts them. */
struct parts {
	struct strbuf *v;
	size_t n, cap;
	size_t optional; /* a part left out rather than ending there (a group's
			  * to-do), or SIZE_MAX */
	bool oom;
};

static struct strbuf *
part_new(struct parts *ps)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 16;
		struct strbuf *v = realloc(ps->v, cap * sizeof(*v));

		if (!v) {
			ps->oom = true;
			return NULL;
		}
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n] = (struct strbuf){ 0 };
	return &ps->v[ps->n++];
}

static void
parts_free(struct parts *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		strbuf_free(&ps->v[i]);
	free(ps->v);
}

static const char *
sep(const struct render *r, bool first)
{
	if (first)
		return "";
	switch (r->style) {
	case STYLE_SMS: return r->lang == LANG_EN ? "; " : "；";
	case STYLE_MARKDOWN: return "\n\n";
	default: return "\n";
	}
}

/* Starts a part: its separator, unless it is the first. */
static struct strbuf *
part(struct parts *ps, const struct render *r)
{
	bool first = ps->n == 0;
	struct strbuf *b = part_new(ps);

	if (b)
		strbuf_puts(b, sep(r, first));
	return b;
}

/* The length of `s` cut to at most `max` bytes at a UTF-8 boundary. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

static void
ending(struct strbuf *b, const struct render *r, size_t more)
{
	strbuf_puts(b, r->style == STYLE_SMS ? "" : "\n");
	if (more == 0)
		strbuf_puts(b, "…");
	else if (r->lang == LANG_EN)
		strbuf_printf(b, "… and %zu more", more);
	else
		strbuf_printf(b, "…另有 %zu 条", more);
}

/* Joins the parts into *ret, at most `max` bytes (0: no limit): whole
 * parts while they fit with the ending that would follow them (the
 * optional one skipped when it does not). */
static int
assemble(const struct parts *ps, size_t head, const struct render *r, size_t max, char **ret)
{
	struct strbuf out = { 0 }, end = { 0 };
	size_t i;

	strbuf_puts(&out, "");
	for (i = 0; i < ps->n; i++) {
		const struct strbuf *p = &ps->v[i];
		size_t need = out.len + p->len;

		strbuf_free(&end);
		if (i == ps->optional && i + 1 < ps->n) {
			/* Only with the line after it: the first alert first. */
			need += ps->v[i + 1].len;
			if (i + 2 < ps->n)
				ending(&end, r, ps->n - (i + 2 > head ? i + 2 : head));
		} else if (i + 1 < ps->n) { /* the ending if the parts after this one are cut */
			ending(&end, r, ps->n - (i + 1 > head ? i + 1 : head));
		}
		if (i == ps->optional && i + 1 < ps->n && max > 0) {
			/* And without it, should the line after not fit after all. */
			struct strbuf alone = { 0 };

			ending(&alone, r, ps->n - (i + 1 > head ? i + 1 : head));
			if (out.len + p->len + alone.len > max)
				need = max + 1;
			strbuf_free(&alone);
		}
		if (max == 0 || need + end.len <= max) {
			size_t skip = 0;

			while (out.len == 0 && skip < p->len && p->p[skip] == '\n')
				skip++; /* a first part after a skipped one */
			strbuf_add(&out, p->p + skip, p->len - skip);
			continue;
		}
		if (i == ps->optional && i + 1 < ps->n) {
			/* The invariant for the part after: its ending fits. */
			continue;
		}
		break;
	}
	if (i < ps->n) {
		size_t more = ps->n - (i > head ? i : head);

		strbuf_free(&end);
		ending(&end, r, more);
		if (i == 0 || out.len + end.len > max) {
			/* Not even the first part and its ending: cut it. */
			const char *dots = "…";
			size_t keep = max > strlen(dots) ? max - strlen(dots) : 0;
			const struct strbuf *p = &ps->v[0];

			out.len = 0;
			strbuf_add(&out, p->p, utf8_cut(p->p, p->len, keep));
			if (out.len + strlen(dots) <= max)
				strbuf_puts(&out, dots);
		} else {
			strbuf_add(&out, end.p, end.len);
		}
	}
	strbuf_free(&end);
	if (out.oom || !out.p) {
		strbuf_free(&out);
		return -ENOMEM;
	}
	*ret = out.p;
	return 0;
}

static void
title_single(struct strbuf *b, const struct render *r, const struct notifier_alert *a)
{
	strbuf_puts(b, "[");
	sb_value(b, a->site);
	strbuf_puts(b, "] ");
	transition_word(b, r, a);
	strbuf_puts(b, " · ");
	if (is_aggregate(a))
		what_line(b, a, r->lang);
	else
		sb_value(b, label_of(a, r->lang));
	strbuf_puts(b, r->lang == LANG_EN ? " (" : "（");
	strbuf_puts(b, severity_word(a, r->lang));
	strbuf_puts(b, r->lang == LANG_EN ? ")" : "）");
}

static void
body_single(struct parts *ps, const struct render *r, const struct notifier_alert *a)
{
	const struct notifier_template *t = template_of(a);
	bool en = r->lang == LANG_EN;
	struct strbuf *b;

	if (r->style != STYLE_MAIL && (b = part(ps, r))) {
		if (r->style == STYLE_MARKDOWN)
			strbuf_puts(b, "**");
		title_single(b, r, a);
		if (r->style == STYLE_MARKDOWN)
			strbuf_puts(b, "**");
	}
	if ((b = part(ps, r))) {
		if (r->style == STYLE_MARKDOWN && critical(a)) {
			sb_severity(b, a, r->lang, r->style);
			strbuf_puts(b, " ");
		}
		what_line(b, a, r->lang);
	}
	if (!is_aggregate(a) && a->has_temp && !uses(t->what[r->lang], "{temp}") &&
	    (b = part(ps, r)))
		strbuf_printf(b, en ? "Reading: %.1f°C" : "体温：%.1f°C", a->temp_c);
	if (a->count > 1 && (is_aggregate(a) || !uses(t->what[r->lang], "{count}")) &&
	    (b = part(ps, r)))
		strbuf_printf(b, en ? "Triggered %" PRId64 " times" : "共触发 %" PRId64 " 次",
			      a->count);
	if (r->style != STYLE_SMS && (b = part(ps, r))) {
		strbuf_puts(b, en ? "Site: " : "小区：");
		sb_value(b, a->site);
	}
	if (a->raised_at_ms && (b = part(ps, r))) {
		strbuf_puts(b, en ? "Raised: " : "时间：");
		local_time(b, r, a->site, a->raised_at_ms, NULL);
	}
	if ((r->m->transition == NTR_REMIND || r->m->transition == NTR_ESCALATE) &&
	    a->raised_at_ms && r->now_ms > a->raised_at_ms && (b = part(ps, r))) {
		strbuf_puts(b, en ? "Open for " : "已持续 ");
		duration(b, r->now_ms - a->raised_at_ms, r->lang);
		strbuf_puts(b, en ? ", not acknowledged" : "，仍未确认");
		if (r->m->transition == NTR_ESCALATE)
			strbuf_puts(b, en ? ": now told to the next level" : "，现通知上一级");
	}
	if (r->m->transition == NTR_RESOLVED) {
		if ((b = part(ps, r))) {
			strbuf_puts(b, en ? "Resolved" : "已解除");
			if (a->resolved_at_ms) {
				strbuf_puts(b, en ? " " : "：");
				local_time(b, r, a->site, a->resolved_at_ms, NULL);
			}
			if (a->reason && *a->reason) {
				strbuf_puts(b, en ? ", reason: " : "，原因：");
				sb_value(b, reason_word(a->reason, r->lang));
			}
			if (a->by && *a->by) {
				strbuf_puts(b, en ? ", by " : "，处理人 ");
				sb_value(b, a->by);
			}
		}
		return;
	}
	if ((b = part(ps, r))) {
		strbuf_puts(b, en ? "To do: " : "处理：");
		strbuf_puts(b, todo_of(a, r->lang));
	}
}

/* A group: the items' order, most severe first, then by raised_at
 * (qsort_r: renders may run on several threads at once). */
static int
cmp_items(const void *x, const void *y, void *arg)
{
	const struct notifier_item *items = arg;
	const struct notifier_alert *a = &items[*(const size_t *)x].alert;
	const struct notifier_alert *b = &items[*(const size_t *)y].alert;

	if (critical(a) != critical(b))
		return critical(a) ? -1 : 1;
	if (a->raised_at_ms != b->raised_at_ms)
		return a->raised_at_ms < b->raised_at_ms ? -1 : 1;
	return *(const size_t *)x < *(const size_t *)y ? -1 : 1;
}

/* Whether every item has the same value `f` gives; that value. */
static const char *
common(const struct notifier_message *m, const char *(*f)(const struct notifier_alert *))
{
	const char *v = f(&m->items[0].alert);

	for (size_t i = 1; v && i < m->nitems; i++) {
		const char *w = f(&m->items[i].alert);

		if (!w || strcmp(v, w) != 0)
			return NULL;
	}
	return v;
}

static const char *
gate_of(const struct notifier_alert *a)
{
	return a->gate ? a->gate : subject_id(a->subject, "gate");
}

static const char *
building_of(const struct notifier_alert *a)
{
	return a->building;
}

static const char *
site_of(const struct notifier_alert *a)
{
	return a->site;
}

static const char *
kind_of(const struct notifier_alert *a)
{
	return a->kind;
}

static void
title_group(struct strbuf *b, const struct render *r)
{
	const struct notifier_message *m = r->m;
	bool en = r->lang == LANG_EN;
	const char *site = common(m, site_of), *gate = common(m, gate_of);
	const char *building = gate ? NULL : common(m, building_of);
	const char *kind = common(m, kind_of);
	int64_t first = INT64_MAX, last = 0;
	struct strbuf place = { 0 }, span = { 0 }, counts = { 0 };

	for (size_t i = 0; i < m->nitems; i++) {
		int64_t t = m->items[i].alert.raised_at_ms;

		if (t == 0) {
			first = INT64_MAX;
			break;
		}
		first = t < first ? t : first;
		last = t > last ? t : last;
	}
	strbuf_puts(b, "[");
	if (site)
		sb_value(b, site);
	else
		strbuf_puts(b, en ? "several sites" : "多个小区");
	strbuf_puts(b, "] ");
	if (m->transition != NTR_RAISED) {
		static const char *const words[NTR_COUNT][2] = {
			[NTR_UPDATED] = { "【升级为紧急】", "Now critical: " },
			[NTR_REMIND] = { "【提醒：仍未确认】", "Reminder, not acknowledged: " },
			[NTR_ESCALATE] = { "【升级通知】", "Escalation: " },
			[NTR_RESOLVED] = { "【已解除】", "Resolved: " },
		};

		strbuf_puts(
			b,
			words[m->transition < NTR_COUNT ? m->transition : NTR_RESOLVED][r->lang]);
	}
	if (gate) {
		strbuf_puts(&place, en ? " at gate " : "门岗 ");
		sb_value(&place, gate);
	} else if (building) {
		strbuf_puts(&place, en ? " in building " : "楼栋 ");
		sb_value(&place, building);
	}
	if (first != INT64_MAX) {
		int64_t min = (last - first + 59999) / 60000;

		if (min <= 1)
			strbuf_puts(&span, en ? " in the last minute" : "1 分钟内");
		else if (min <= 120)
			strbuf_printf(&span, en ? " within %" PRId64 " min" : "%" PRId64 " 分钟内",
				      min);
		else
			strbuf_printf(&span, en ? " within %" PRId64 " h" : "%" PRId64 " 小时内",
				      (min + 59) / 60);
	}
	/* The count per kind, in order of first appearance. */
	for (size_t i = 0; !kind && i < m->nitems; i++) {
		const char *k = m->items[i].alert.kind;
		size_t n = 0, j;

		for (j = 0; j < i; j++)
			if (strcmp(m->items[j].alert.kind, k) == 0)
				break;
		if (j < i)
			continue;
		for (j = i; j < m->nitems; j++)
			n += strcmp(m->items[j].alert.kind, k) == 0;
		if (counts.len)
			strbuf_puts(&counts, en ? ", " : "，");
		if (en)
			strbuf_printf(&counts, "%zu %s", n, label_of(&m->items[i].alert, r->lang));
		else
			strbuf_printf(&counts, "%s %zu 条", label_of(&m->items[i].alert, r->lang),
				      n);
	}
	if (en) {
		strbuf_printf(b, "%zu ", m->nitems);
		if (kind)
			strbuf_printf(b, "%s ", label_of(&m->items[0].alert, r->lang));
		strbuf_puts(b, m->nitems == 1 ? "alert" : "alerts");
		if (place.p)
			strbuf_puts(b, place.p);
		if (span.p)
			strbuf_puts(b, span.p);
		if (counts.p)
			strbuf_printf(b, ": %s", counts.p);
	} else {
		if (place.p) {
			strbuf_puts(b, place.p);
			strbuf_puts(b, " ");
		}
		if (span.p) {
			strbuf_puts(b, span.p);
			strbuf_puts(b, " ");
		}
		strbuf_printf(b, "%zu 条%s告警", m->nitems,
			      kind ? label_of(&m->items[0].alert, r->lang) : "");
		if (counts.p)
			strbuf_printf(b, "：%s", counts.p);
	}
	strbuf_free(&place);
	strbuf_free(&span);
	strbuf_free(&counts);
}

static int
body_group(struct parts *ps, size_t *head, const struct render *r, const char *title)
{
	const struct notifier_message *m = r->m;
	bool en = r->lang == LANG_EN;
	const char *kind = common(m, kind_of);
	size_t *order = calloc(m->nitems, sizeof(*order));
	char date[16], date0[16] = "";
	bool one_day = true;
	struct strbuf *b;

	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < m->nitems; i++) {
		order[i] = i;
		local_date(date, sizeof(date), r, m->items[i].alert.site,
			   m->items[i].alert.raised_at_ms);
		if (i == 0)
			memcpy(date0, date, sizeof(date));
		else if (strcmp(date, date0) != 0)
			one_day = false;
	}
	qsort_r(order, m->nitems, sizeof(*order), cmp_items, (void *)m->items);

	if (r->style != STYLE_MAIL && (b = part(ps, r))) {
		strbuf_puts(b, r->style == STYLE_MARKDOWN ? "**" : "");
		strbuf_puts(b, title);
		strbuf_puts(b, r->style == STYLE_MARKDOWN ? "**" : "");
	}
	if (kind && m->transition != NTR_RESOLVED && (b = part(ps, r))) {
		const struct notifier_alert *a = &m->items[0].alert;

		ps->optional = ps->n - 1;
		strbuf_puts(b, en ? "To do: " : "处理：");
		strbuf_puts(b, todo_of(a, r->lang));
	}
	*head = ps->n;
	for (size_t k = 0; k < m->nitems; k++) {
		const struct notifier_alert *a = &m->items[order[k]].alert;

		if (!(b = part_new(ps)))
			break;
		if (k == 0 && ps->n == 1) {
			/* MAIL: the first line of the body */
		} else if (r->style == STYLE_SMS) {
			strbuf_puts(b, sep(r, false));
		} else {
			strbuf_puts(b, "\n");
		}
		if (r->style != STYLE_SMS)
			strbuf_puts(b, r->style == STYLE_MARKDOWN || en ? "- " : "· ");
		if (a->raised_at_ms) {
			local_time(b, r, a->site, a->raised_at_ms,
				   one_day ? "%H:%M" : "%m-%d %H:%M");
			strbuf_puts(b, " ");
		}
		sb_severity(b, a, r->lang, r->style);
		strbuf_puts(b, " ");
		what_line(b, a, r->lang);
		if (m->transition == NTR_RESOLVED && a->reason && *a->reason) {
			strbuf_puts(b, en ? " (" : "（");
			sb_value(b, reason_word(a->reason, r->lang));
			strbuf_puts(b, en ? ")" : "）");
		}
	}
	if (r->style == STYLE_MARKDOWN && *head < ps->n && ps->n > 1) {
		/* The list after a paragraph: a blank line before it. */
		struct strbuf *first = &ps->v[*head];

		if (!first->oom && first->len && first->p[0] == '\n') {
			struct strbuf nb = { 0 };

			strbuf_puts(&nb, "\n");
			strbuf_add(&nb, first->p, first->len);
			if (!nb.oom) {
				strbuf_free(first);
				*first = nb;
			} else {
				strbuf_free(&nb);
			}
		}
	}
	free(order);
	return 0;
}

int
notifier_render(const struct notifier_message *m, enum notifier_lang lang,
		enum notifier_style style, size_t max_bytes, notifier_zone_fn *zone, void *zarg,
		char **ret_title, char **ret_body)
{
	struct render r = {
		m, lang == LANG_EN ? LANG_EN : LANG_ZH_CN, style, zone, zarg, m->now_ms
	};
	struct strbuf title = { 0 };
	struct parts ps = { .optional = SIZE_MAX };
	size_t head = 0;
	char *body = NULL;
	int err = 0;

	if (!m->items || m->nitems == 0)
		return -EINVAL;
	if (r.now_ms == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		r.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	if (m->nitems == 1) {
		title_single(&title, &r, &m->items[0].alert);
		body_single(&ps, &r, &m->items[0].alert);
		head = ps.n;
	} else {
		title_group(&title, &r);
		if (!title.oom)
			err = body_group(&ps, &head, &r, title.p);
	}
	for (size_t i = 0; i < ps.n; i++)
		ps.oom |= ps.v[i].oom;
	if (!err && (title.oom || ps.oom))
		err = -ENOMEM;
	if (!err)
		err = assemble(&ps, head, &r, max_bytes, &body);
	parts_free(&ps);
	if (err) {
		strbuf_free(&title);
		return err;
	}
	*ret_title = title.p;
	*ret_body = body;
	return 0;
}

/* One language's {"label","what","todo"} of `a`; NULL when out of memory. */
static json_t *
texts_of(const struct notifier_alert *a, enum notifier_lang lang)
{
	struct strbuf b = { 0 };
	char *what;
	json_t *o;

	what_line(&b, a, lang);
	if (strbuf_take(&b, &what) < 0)
		return NULL;
	o = json_pack("{s:s, s:s, s:s}", "label", label_of(a, lang), "what", what, "todo",
		      todo_of(a, lang));
	free(what);
	return o;
}

json_t *
notifier_texts_json(const json_t *alert)
{
	struct notifier_alert a;
	json_t *zh, *en;

	if (!alert || notifier_alert_from_json(alert, &a) < 0)
		return NULL;
	zh = texts_of(&a, LANG_ZH_CN);
	en = texts_of(&a, LANG_EN);
	if (!zh || !en) {
		json_decref(zh);
		json_decref(en);
		return NULL;
	}
	return json_pack("{s:o, s:o}", "zh-CN", zh, "en", en);
}
