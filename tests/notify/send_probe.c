/* send_probe.c - test driver of notifier_send (tests only): builds one
 * receiver from its options and one message from a file of alert messages
 * (docs/alerts.md, "The message": a JSON array of them, or one object),
 * calls notifier_send --count times with one sender and prints one JSON
 * line per call:
 *
 *   {"outcome":"ok"|"retry"|"rate_limited","retry_after_ms":N,
 *    "http_status":N,"answer":"...","body":"...","elapsed_ms":F}
 *
 * send_probe --type wecom|dingtalk|webhook|smtp|sms --url URL [--secret S]
 *            [--lang zh-CN|en] [--style text|markdown] [--to A,B] [--from F]
 *            [--template T] [--content-type CT] [--max-bytes N]
 *            [--timeout MS] [--id N] [--route R] [--name NAME]
 *            [--transition raised|...] [--count N] ALERTS.json
 * Exit 0 when every call returned 0 (whatever the receiver said), 2 on
 * bad usage. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifier_send.h"

static const struct tz *
no_zone(void *arg, const char *site)
{
	(void)arg;
	(void)site;
	return NULL;
}

static char **
split(char *s)
{
	size_t n = 1;
	char **v;

	for (char *p = s; *p; p++)
		n += *p == ',';
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	n = 0;
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ","))
		v[n++] = tok;
	return v;
}

static int
usage(const char *why)
{
	fprintf(stderr, "send_probe: %s\n", why);
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 'T' },
		{ "url", required_argument, NULL, 'u' },
		{ "secret", required_argument, NULL, 's' },
		{ "lang", required_argument, NULL, 'l' },
		{ "style", required_argument, NULL, 'S' },
		{ "to", required_argument, NULL, 't' },
		{ "from", required_argument, NULL, 'f' },
		{ "template", required_argument, NULL, 'b' },
		{ "content-type", required_argument, NULL, 'c' },
		{ "max-bytes", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 'w' },
		{ "id", required_argument, NULL, 'i' },
		{ "route", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "transition", required_argument, NULL, 'x' },
		{ "count", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const outcomes[] = { "ok", "retry", "rate_limited" };
	struct receiver r = { .name = "probe", .style = STYLE_MARKDOWN, .timeout = 5000 };
	struct notifier_message m = { .id = 1, .route = "default", .transition = NTR_RAISED };
	struct notifier_item *items;
	struct notifier_sender *s;
	json_t *alerts;
	json_error_t jerr;
	long count = 1;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'T':
			if (!strcmp(optarg, "wecom"))
				r.type = RECEIVER_WECOM;
			else if (!strcmp(optarg, "dingtalk"))
				r.type = RECEIVER_DINGTALK;
			else if (!strcmp(optarg, "webhook"))
				r.type = RECEIVER_WEBHOOK;
			else if (!strcmp(optarg, "smtp"))
				r.type = RECEIVER_SMTP;
			else if (!strcmp(optarg, "sms"))
				r.type = RECEIVER_SMS;
			else
				return usage("unknown --type");
			break;
		case 'u': r.url = optarg; break;
		case 's': r.secret = optarg; break;
		case 'l':
			if (notifier_lang_parse(optarg, &r.language))
				return usage("unknown --lang");
			break;
		case 'S':
			if (!strcmp(optarg, "text"))
				r.style = STYLE_TEXT;
			else if (!strcmp(optarg, "markdown"))
				r.style = STYLE_MARKDOWN;
			else
				return usage("--style is text or markdown");
			break;
		case 't': r.to = split(optarg); break;
		case 'f': r.from = optarg; break;
		case 'b': r.body_template = optarg; break;
		case 'c': r.content_type = optarg; break;
		case 'm': r.max_bytes = strtoul(optarg, NULL, 10); break;
		case 'w': r.timeout = strtoll(optarg, NULL, 10); break;
		case 'i': m.id = strtoll(optarg, NULL, 10); break;
		case 'r': m.route = optarg; break;
		case 'n': r.name = optarg; break;
		case 'x':
			if (notifier_transition_parse(optarg, &m.transition))
				return usage("unknown --transition");
			break;
		case 'N': count = strtol(optarg, NULL, 10); break;
		default: return usage("bad option");
		}
	}
	if (optind + 1 != argc || !r.url)
		return usage("want --type, --url and one file of alerts");
	alerts = json_load_file(argv[optind], 0, &jerr);
	if (!alerts)
		return usage(jerr.text);
	if (json_is_object(alerts)) {
		json_t *a = json_array();

		json_array_append_new(a, alerts);
		alerts = a;
	}
	m.nitems = json_array_size(alerts);
	items = calloc(m.nitems ? m.nitems : 1, sizeof(*items));
	if (!items || !m.nitems)
		return usage("no alerts");
	for (size_t i = 0; i < m.nitems; i++) {
		items[i].transition = m.transition;
		if (notifier_alert_from_json(json_array_get(alerts, i), &items[i].alert))
			return usage("an alert lacks a field");
	}
	m.items = items;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) || notifier_sender_create(&s))
		return usage("no memory");
	for (long k = 0; k < count; k++) {
		struct send_result res;
		struct timespec t0, t1;
		char *body = NULL, *line;
		json_t *out;
		int err;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		err = notifier_send(s, &r, &m, no_zone, NULL, &res, &body);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (err) {
			fprintf(stderr, "send_probe: notifier_send: %s\n", strerror(-err));
			rc = 1;
			break;
		}
		out = json_pack("{s:s, s:I, s:I, s:s, s:s?, s:f}", "outcome", outcomes[res.outcome],
				"retry_after_ms", (json_int_t)res.retry_after_ms, "http_status",
				(json_int_t)res.http_status, "answer", res.answer, "body", body,
				"elapsed_ms",
				(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
		line = out ? json_dumps(out, JSON_COMPACT) : NULL;
		if (!line) {
			fprintf(stderr, "send_probe: cannot print the result\n");
			rc = 1;
			break;
		}
		printf("%s\n", line);
		fflush(stdout);
		free(line);
		json_decref(out);
		free(body);
	}
	notifier_sender_free(s);
	curl_global_cleanup();
	json_decref(alerts);
	free(items);
	free(r.to);
	return rc;
}
