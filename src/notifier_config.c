/* notifier_config.c - cordon-notify's sections of the shared config file
 * (docs/notify.md, "Configuration"): [notify], [receiver.NAME],
 * [route.NAME]. config.c reads the shared sections ([mqtt], [postgres],
 * [site], [log]) and hands the keys of these to notifier_config_key();
 * notifier_config_check() then checks what needs the whole file (routes
 * naming receivers). Secrets (a robot's key in its URL, a signing secret)
 * are read from their files here, once per load, and never printed. */
#include "notifier_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alert_state.h"
#include "normalize.h"

#define NAME_MAX_LEN 64

/* Keys of [notify], [receiver.*] and [route.*]: their names, for the
 * "set twice" check (a bit each) and for docs/notify.md. */
static const char *const notify_keys[] = { "client_id",	     "username",	"password_file",
					   "metrics_listen", "fail_after",	"give_up_after",
					   "retry_max",	     "reconcile_after", NULL };
static const char *const receiver_keys[] = { "type",   "url_file",	"secret_file",	"to",
					     "from",   "body_template", "content_type", "language",
					     "format", "rate_limit",	"timeout",	"max_bytes",
					     NULL };
static const char *const route_keys[] = {
	"sites",      "kinds",	      "severities",	"subjects",    "receivers",
	"group_wait", "remind_every", "escalate_after", "escalate_to", NULL
};

static const char *const type_names[] = {
	[RECEIVER_WECOM] = "wecom",	[RECEIVER_DINGTALK] = "dingtalk",
	[RECEIVER_WEBHOOK] = "webhook", [RECEIVER_SMTP] = "smtp",
	[RECEIVER_SMS] = "sms",
};

/* What a section's parse keeps beside the struct until the check. */
struct pending {
	unsigned seen;	       /* bit per key index */
	int line;	       /* of its first key */
	char **receiver_names; /* routes */
	char **escalate_names;
	bool has_type;
};

struct notifier_load {
	struct notifier_config *nc;
	const char *path;
	unsigned notify_seen;
	struct pending *recv_pending;
	struct pending *route_pending;
};

const char *
notifier_receiver_type_name(enum receiver_type t)
{
	return (unsigned)t < sizeof(type_names) / sizeof(type_names[0]) ? type_names[t] : "?";
}

static void
free_list(char **list)
{
	if (!list)
		return;
	for (char **p = list; *p; p++)
		free(*p);
	free(list);
}

/* "a, b c" -> {"a","b","c",NULL}; "*" alone -> NULL (every value), also
 * an empty value. Returns 0, -ENOMEM. */
static int
parse_list(const char *value, char ***ret)
{
	char **list = NULL;
	size_t n = 0;
	const char *p = value;

	*ret = NULL;
	for (;;) {
		size_t len;
		char **grown;

		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		len = strcspn(p, ", \t");
		grown = realloc(list, (n + 2) * sizeof(*list));
		if (!grown)
			goto nomem;
		list = grown;
		list[n] = strndup(p, len);
		if (!list[n])
			goto nomem;
		list[++n] = NULL;
		p += len;
	}
	if (n == 1 && strcmp(list[0], "*") == 0) {
		free_list(list);
		list = NULL;
	}
	*ret = list;
	return 0;
nomem:
	if (list)
		list[n] = NULL;
	free_list(list);
	return -ENOMEM;
}

/* A name of [receiver.NAME] / [route.NAME]: [A-Za-z0-9_-]{1,64}. */
static bool
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

static int
key_index(const char *const *keys, const char *name)
{
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], name) == 0)
			return i;
	return -1;
}

static int
grow(void **array, size_t *n, size_t size)
{
	void *p = realloc(*array, (*n + 1) * size);

	if (!p)
		return -ENOMEM;
	memset((char *)p + *n * size, 0, size);
	*array = p;
	(*n)++;
	return 0;
}

/* The receiver or route of `name`, made on its first key. */
static ssize_t
find_or_add(struct notifier_load *ld, bool route, const char *name, int line)
{
	struct notifier_config *nc = ld->nc;
	size_t n = route ? nc->nroutes : nc->nreceivers;
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(route ? nc->routes[i].name : nc->receivers[i].name, name) == 0)
			return (ssize_t)i;
	if (route) {
		size_t np = n;

		if (grow((void **)&nc->routes, &nc->nroutes, sizeof(*nc->routes)) < 0 ||
		    grow((void **)&ld->route_pending, &np, sizeof(*ld->route_pending)) < 0)
			return -ENOMEM;
		nc->routes[i].name = strdup(name);
		if (!nc->routes[i].name)
			return -ENOMEM;
		nc->routes[i].group_wait = 30000;
		nc->routes[i].remind_every = 1800000;
		ld->route_pending[i].line = line;
	} else {
		size_t np = n;
		struct receiver *r;

		if (grow((void **)&nc->receivers, &nc->nreceivers, sizeof(*nc->receivers)) < 0 ||
		    grow((void **)&ld->recv_pending, &np, sizeof(*ld->recv_pending)) < 0)
			return -ENOMEM;
		r = &nc->receivers[i];
		r->name = strdup(name);
		if (!r->name)
			return -ENOMEM;
		r->style = STYLE_MARKDOWN;
		r->rate_limit = -1; /* the type's default, set by the check */
		r->timeout = 10000;
		ld->recv_pending[i].line = line;
	}
	return (ssize_t)i;
}

static const char *
notify_key(struct notifier_config *nc, const char *name, const char *value)
{
	if (strcmp(name, "client_id") == 0) {
		if (!*value || strlen(value) > 128)
			return "must be 1 to 128 characters";
		return config_set_string(&nc->client_id, value) < 0 ? "out of memory" : NULL;
	}
	/* The broker user and its password's file; read at start as [mqtt]'s. */
	if (strcmp(name, "username") == 0) {
		if (strlen(value) > 256)
			return "must be at most 256 characters";
		return config_set_string(&nc->username, value) < 0 ? "out of memory" : NULL;
	}
	if (strcmp(name, "password_file") == 0)
		return config_set_string(&nc->password_file, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "metrics_listen") == 0)
		return config_set_string(&nc->metrics_listen, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "fail_after") == 0)
		return config_set_duration(&nc->fail_after, value, 1000, 86400000);
	if (strcmp(name, "give_up_after") == 0)
		return config_set_duration(&nc->give_up_after, value, 60000, 30 * 86400000LL);
	if (strcmp(name, "retry_max") == 0)
		return config_set_duration(&nc->retry_max, value, 1000, 3600000);
	if (strcmp(name, "reconcile_after") == 0)
		return config_set_duration(&nc->reconcile_after, value, 1000, 3600000);
	return "unknown key";
}

static const char *
receiver_key(struct receiver *r, struct pending *p, const char *name, const char *value)
{
	int64_t v;

	if (strcmp(name, "type") == 0) {
		for (size_t t = 0; t < sizeof(type_names) / sizeof(type_names[0]); t++)
			if (strcmp(value, type_names[t]) == 0) {
				r->type = (enum receiver_type)t;
				p->has_type = true;
				return NULL;
			}
		return "must be wecom, dingtalk, webhook, smtp or sms";
	}
	if (strcmp(name, "url_file") == 0 || strcmp(name, "secret_file") == 0) {
		bool url = name[0] == 'u';
		char *secret;

		if (!*value)
			return "must name a file";
		secret = config_read_secret(value);
		if (!secret)
			return errno == EINVAL ?
				"the file is empty, or its first line is over 1 KiB" :
				"cannot read the file (missing, or not readable by us)";
		if (config_set_string(url ? &r->url_file : &r->secret_file, value) < 0) {
			free(secret);
			return "out of memory";
		}
		free(url ? r->url : r->secret);
		if (url)
			r->url = secret;
		else
			r->secret = secret;
		return NULL;
	}
	if (strcmp(name, "to") == 0) {
		free_list(r->to);
		if (parse_list(value, &r->to) < 0)
			return "out of memory";
		return r->to ? NULL : "must list at least one recipient";
	}
	if (strcmp(name, "from") == 0)
		return config_set_string(&r->from, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "body_template") == 0)
		return config_set_string(&r->body_template, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "content_type") == 0)
		return config_set_string(&r->content_type, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "language") == 0)
		return notifier_lang_parse(value, &r->language) < 0 ? "must be zh-CN or en" : NULL;
	if (strcmp(name, "format") == 0) {
		if (strcmp(value, "text") == 0)
			r->style = STYLE_TEXT;
		else if (strcmp(value, "markdown") == 0)
			r->style = STYLE_MARKDOWN;
		else
			return "must be text or markdown";
		return NULL;
	}
	if (strcmp(name, "rate_limit") == 0) {
		char *end;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (errno || end == value || *end || v < 0 || v > 100000)
			return "must be a number of messages per minute, 0 to 100000 (0: no limit)";
		r->rate_limit = v;
		return NULL;
	}
	if (strcmp(name, "timeout") == 0)
		return config_set_duration(&r->timeout, value, 100, 300000);
	if (strcmp(name, "max_bytes") == 0) {
		if (config_parse_size(value, &v) < 0 || v < 64 || v > 1048576)
			return "must be a size from 64 to 1MiB";
		r->max_bytes = (size_t)v;
		return NULL;
	}
	return "unknown key";
}

/* Kinds are checked when they hold no glob: a typo must not route nothing. */
static const char *
check_kinds(char **kinds)
{
	for (char **k = kinds; k && *k; k++) {
		if (strpbrk(*k, "*?["))
			continue;
		if (alert_state_kind_from_name(*k) < 0 && strcmp(*k, "notify_failed") != 0)
			return "names an unknown alert kind (docs/alerts.md)";
	}
	return NULL;
}

static const char *
check_severities(char **sev)
{
	for (char **s = sev; s && *s; s++)
		if (!strpbrk(*s, "*?[") && strcmp(*s, "info") != 0 && strcmp(*s, "warning") != 0 &&
		    strcmp(*s, "critical") != 0)
			return "must list info, warning or critical";
	return NULL;
}

static const char *
route_key(struct route *rt, struct pending *p, const char *name, const char *value)
{
	char ***list = NULL;

	if (strcmp(name, "sites") == 0)
		list = &rt->sites;
	else if (strcmp(name, "kinds") == 0)
		list = &rt->kinds;
	else if (strcmp(name, "severities") == 0)
		list = &rt->severities;
	else if (strcmp(name, "subjects") == 0)
		list = &rt->subjects;
	else if (strcmp(name, "receivers") == 0)
		list = &p->receiver_names;
	else if (strcmp(name, "escalate_to") == 0)
		list = &p->escalate_names;
	if (list) {
		free_list(*list);
		if (parse_list(value, list) < 0)
			return "out of memory";
		if (list == &rt->kinds)
			return check_kinds(rt->kinds);
		if (list == &rt->severities)
			return check_severities(rt->severities);
		if ((list == &p->receiver_names || list == &p->escalate_names) && !*list)
			return "must name receivers ([receiver.NAME] sections)";
		return NULL;
	}
	if (strcmp(name, "group_wait") == 0)
		return config_set_duration(&rt->group_wait, value, 0, 3600000);
	if (strcmp(name, "remind_every") == 0)
		return config_set_duration(&rt->remind_every, value, 0, 7 * 86400000LL);
	if (strcmp(name, "escalate_after") == 0)
		return config_set_duration(&rt->escalate_after, value, 0, 7 * 86400000LL);
	return "unknown key";
}

int
notifier_config_key(void *arg, const char *section, const char *name, const char *value,
		    const char *path, int line, FILE *errors)
{
	struct notifier_load *ld = arg;
	const char *why = NULL;
	bool route = strncmp(section, "route.", 6) == 0;
	bool recv = strncmp(section, "receiver.", 9) == 0;
	const char *const *keys = route ? route_keys : recv ? receiver_keys : notify_keys;
	int ki = key_index(keys, name);
	unsigned *seen;

	ld->path = path;
	if (strcmp(section, "web") == 0)
		return 0; /* cordon-web's */
	if (ki < 0) {
		fprintf(errors, "%s:%d: unknown key '%s' in section [%s]\n", path, line, name,
			section);
		return -1;
	}
	if (route || recv) {
		const char *nm = section + (route ? 6 : 9);
		ssize_t i;

		if (!valid_name(nm)) {
			fprintf(errors,
				"%s:%d: [%s]: the name after '%s' must be 1 to 64 letters, digits,"
				" '_' or '-'\n",
				path, line, section, route ? "route." : "receiver.");
			return -1;
		}
		i = find_or_add(ld, route, nm, line);
		if (i < 0) {
			fprintf(errors, "%s:%d: out of memory\n", path, line);
			return -1;
		}
		seen = route ? &ld->route_pending[i].seen : &ld->recv_pending[i].seen;
		if (!(*seen & (1u << ki)))
			why = route ?
				route_key(&ld->nc->routes[i], &ld->route_pending[i], name, value) :
				receiver_key(&ld->nc->receivers[i], &ld->recv_pending[i], name,
					     value);
	} else {
		seen = &ld->notify_seen;
		if (!(*seen & (1u << ki)))
			why = notify_key(ld->nc, name, value);
	}
	if (*seen & (1u << ki)) {
		fprintf(errors, "%s:%d: [%s] %s is set twice\n", path, line, section, name);
		return -1;
	}
	*seen |= 1u << ki;
	if (why) {
		/* A secret's file name is not a secret; its content is never shown. */
		fprintf(errors, "%s:%d: [%s] %s = '%s': %s\n", path, line, section, name, value,
			why);
		return -1;
	}
	return 0;
}

static size_t
default_max_bytes(const struct receiver *r)
{
	switch (r->type) {
	case RECEIVER_WECOM: return r->style == STYLE_TEXT ? 2048 : 4096;
	case RECEIVER_DINGTALK: return 20000;
	case RECEIVER_WEBHOOK: return 16384;
	case RECEIVER_SMTP: return 65536;
	case RECEIVER_SMS: return 300;
	}
	return 2048;
}

/* The checks of one receiver once its section is read; errors name the
 * section's first line. */
static int
check_receiver(struct receiver *r, const struct pending *p, const char *path, FILE *errors)
{
	const char *missing = NULL;

	if (!p->has_type)
		missing = "type (wecom, dingtalk, webhook, smtp or sms)";
	else if (!r->url)
		missing = "url_file";
	else if (r->type == RECEIVER_SMTP && !r->from)
		missing = "from";
	else if ((r->type == RECEIVER_SMTP || r->type == RECEIVER_SMS) && !r->to)
		missing = "to";
	else if (r->type == RECEIVER_SMS && !r->body_template)
		missing = "body_template";
	if (missing) {
		fprintf(errors, "%s:%d: [receiver.%s] needs %s\n", path, p->line, r->name, missing);
		return -1;
	}
	if (r->secret && r->type != RECEIVER_DINGTALK) {
		fprintf(errors, "%s:%d: [receiver.%s] secret_file is for type dingtalk only\n",
			path, p->line, r->name);
		return -1;
	}
	if (r->type == RECEIVER_SMS && !r->content_type &&
	    !(r->content_type = strdup("application/json")))
		return -1;
	if (r->rate_limit < 0)
		r->rate_limit = r->type == RECEIVER_WECOM || r->type == RECEIVER_DINGTALK ? 20 : 0;
	if (r->type == RECEIVER_SMS)
		r->style = STYLE_SMS;
	else if (r->type == RECEIVER_SMTP)
		r->style = STYLE_MAIL;
	else if (r->type == RECEIVER_WEBHOOK)
		r->style = STYLE_TEXT;
	if (!r->max_bytes)
		r->max_bytes = default_max_bytes(r);
	return 0;
}

/* Names -> indexes into nc->receivers. */
static int
resolve(const struct notifier_config *nc, char **names, size_t **ret, size_t *ret_n,
	const struct route *rt, const struct pending *p, const char *key, const char *path,
	FILE *errors)
{
	size_t n = 0;

	for (char **nm = names; nm && *nm; nm++)
		n++;
	*ret = calloc(n ? n : 1, sizeof(**ret));
	if (!*ret)
		return -1;
	*ret_n = n;
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < nc->nreceivers; j++)
			if (strcmp(nc->receivers[j].name, names[i]) == 0)
				break;
		if (j == nc->nreceivers) {
			fprintf(errors,
				"%s:%d: [route.%s] %s names '%s', which has no [receiver.%s]\n",
				path, p->line, rt->name, key, names[i], names[i]);
			return -1;
		}
		(*ret)[i] = j;
	}
	return 0;
}

int
notifier_config_init(struct notifier_config *nc)
{
	int rc;

	memset(nc, 0, sizeof(*nc));
	if ((rc = config_init(&nc->base)) < 0)
		return rc;
	nc->client_id = strdup("cordon-notify");
	nc->username = strdup("");
	nc->password_file = strdup("");
	nc->metrics_listen = strdup("127.0.0.1:9479");
	nc->fail_after = 300000;
	nc->give_up_after = 86400000;
	nc->retry_max = 300000;
	nc->reconcile_after = 60000;
	if (!nc->client_id || !nc->username || !nc->password_file || !nc->metrics_listen) {
		notifier_config_finish(nc);
		return -ENOMEM;
	}
	return 0;
}

void
notifier_config_finish(struct notifier_config *nc)
{
	config_finish(&nc->base);
	free(nc->client_id);
	free(nc->username);
	free(nc->password_file);
	free(nc->metrics_listen);
	for (size_t i = 0; i < nc->nreceivers; i++) {
		struct receiver *r = &nc->receivers[i];

		free(r->name);
		free(r->url);
		free(r->url_file);
		free(r->secret);
		free(r->secret_file);
		free_list(r->to);
		free(r->from);
		free(r->body_template);
		free(r->content_type);
	}
	free(nc->receivers);
	for (size_t i = 0; i < nc->nroutes; i++) {
		struct route *rt = &nc->routes[i];

		free(rt->name);
		free_list(rt->sites);
		free_list(rt->kinds);
		free_list(rt->severities);
		free_list(rt->subjects);
		free(rt->receivers);
		free(rt->escalate_to);
	}
	free(nc->routes);
	memset(nc, 0, sizeof(*nc));
}

int
notifier_config_load(struct notifier_config *nc, const char *path, FILE *errors)
{
	struct notifier_load ld = { .nc = nc, .path = path };
	int rc = config_load_with(&nc->base, path, errors, notifier_config_key, &ld);
	int nerr = 0;

	for (size_t i = 0; i < nc->nreceivers; i++)
		if (check_receiver(&nc->receivers[i], &ld.recv_pending[i], path, errors) < 0)
			nerr++;
	for (size_t i = 0; i < nc->nroutes; i++) {
		struct route *rt = &nc->routes[i];
		struct pending *p = &ld.route_pending[i];

		if (!p->receiver_names) {
			fprintf(errors, "%s:%d: [route.%s] needs receivers\n", path, p->line,
				rt->name);
			nerr++;
		} else if (resolve(nc, p->receiver_names, &rt->receivers, &rt->nreceivers, rt, p,
				   "receivers", path, errors) < 0 ||
			   resolve(nc, p->escalate_names, &rt->escalate_to, &rt->nescalate_to, rt,
				   p, "escalate_to", path, errors) < 0) {
			nerr++;
		} else if (rt->nescalate_to && !rt->escalate_after) {
			fprintf(errors, "%s:%d: [route.%s] escalate_to needs escalate_after\n",
				path, p->line, rt->name);
			nerr++;
		} else if (!rt->nescalate_to && rt->escalate_after) {
			fprintf(errors, "%s:%d: [route.%s] escalate_after needs escalate_to\n",
				path, p->line, rt->name);
			nerr++;
		}
		free_list(p->receiver_names);
		free_list(p->escalate_names);
	}
	/* "default" goes last: it takes what no other route takes. */
	for (size_t i = 0; i + 1 < nc->nroutes; i++)
		if (strcmp(nc->routes[i].name, "default") == 0) {
			struct route d = nc->routes[i];

			memmove(&nc->routes[i], &nc->routes[i + 1],
				(nc->nroutes - i - 1) * sizeof(d));
			nc->routes[nc->nroutes - 1] = d;
			break;
		}
	if (rc == 0 && nc->password_file[0] && !nc->username[0]) {
		fprintf(errors,
			"%s: [notify] password_file needs [notify] username (without it, [mqtt]'s"
			" user and password are used)\n",
			path);
		nerr++;
	}
	if (rc == 0 && nerr == 0 && nc->nroutes == 0) {
		fprintf(errors, "%s: no [route.NAME] section: cordon-notify would send nothing\n",
			path);
		nerr++;
	}
	free(ld.recv_pending);
	free(ld.route_pending);
	if (rc < 0 && rc != -EINVAL)
		return rc;
	return rc < 0 || nerr ? -EINVAL : 0;
}

const char *
notifier_config_username(const struct notifier_config *nc)
{
	return nc->username && nc->username[0] ? nc->username : nc->base.mqtt_username;
}

const char *
notifier_config_password_file(const struct notifier_config *nc)
{
	return nc->username && nc->username[0] ? nc->password_file : nc->base.mqtt_password_file;
}

void
notifier_config_print(const struct notifier_config *nc, FILE *out)
{
	fprintf(out, "[notify]\nclient_id = %s\nusername = %s\npassword_file = %s\n", nc->client_id,
		notifier_config_username(nc), notifier_config_password_file(nc));
	fprintf(out, "metrics_listen = %s\n", nc->metrics_listen);
	fprintf(out, "fail_after = %llds\ngive_up_after = %llds\nretry_max = %llds\n",
		(long long)nc->fail_after / 1000, (long long)nc->give_up_after / 1000,
		(long long)nc->retry_max / 1000);
	fprintf(out, "reconcile_after = %llds\n", (long long)nc->reconcile_after / 1000);
	for (size_t i = 0; i < nc->nreceivers; i++) {
		const struct receiver *r = &nc->receivers[i];

		fprintf(out, "\n[receiver.%s]\ntype = %s\nurl_file = %s\n", r->name,
			notifier_receiver_type_name(r->type), r->url_file);
		if (r->secret_file)
			fprintf(out, "secret_file = %s\n", r->secret_file);
		if (r->to) {
			/* Phone numbers as everywhere else: 138****0000. */
			fputs("to =", out);
			for (char **t = r->to; *t; t++) {
				char shown[256];

				snprintf(shown, sizeof(shown), "%s", *t);
				if (r->type == RECEIVER_SMS)
					normalize_mask_digits(shown, strlen(shown));
				fprintf(out, " %s", shown);
			}
			fputc('\n', out);
		}
		if (r->from)
			fprintf(out, "from = %s\n", r->from);
		fprintf(out,
			"language = %s\nrate_limit = %lld\ntimeout = %lldms\nmax_bytes = %zu\n",
			notifier_lang_name(r->language), (long long)r->rate_limit,
			(long long)r->timeout, r->max_bytes);
	}
	for (size_t i = 0; i < nc->nroutes; i++) {
		const struct route *rt = &nc->routes[i];
		char *const *lists[] = { rt->sites, rt->kinds, rt->severities, rt->subjects };
		const char *names[] = { "sites", "kinds", "severities", "subjects" };

		fprintf(out, "\n[route.%s]\n", rt->name);
		for (size_t l = 0; l < 4; l++) {
			fprintf(out, "%s =", names[l]);
			if (!lists[l])
				fputs(" *", out);
			for (char *const *p = lists[l]; p && *p; p++)
				fprintf(out, " %s", *p);
			fputc('\n', out);
		}
		fputs("receivers =", out);
		for (size_t j = 0; j < rt->nreceivers; j++)
			fprintf(out, " %s", nc->receivers[rt->receivers[j]].name);
		fprintf(out, "\ngroup_wait = %lldms\nremind_every = %lldms\n",
			(long long)rt->group_wait, (long long)rt->remind_every);
		if (rt->nescalate_to) {
			fprintf(out, "escalate_after = %lldms\nescalate_to =",
				(long long)rt->escalate_after);
			for (size_t j = 0; j < rt->nescalate_to; j++)
				fprintf(out, " %s", nc->receivers[rt->escalate_to[j]].name);
			fputc('\n', out);
		}
	}
}
