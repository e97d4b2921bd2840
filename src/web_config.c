/* web_config.c - cordon-web's [web] section of the shared config file
 * (docs/web.md, "Configuration"). config.c reads the shared sections and
 * hands the keys of [web] to web_key(); the sections of cordon-notify are
 * accepted without being read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "web.h"

#ifndef CORDON_WEB_ASSETS
#define CORDON_WEB_ASSETS "/usr/share/cordon/web"
#endif

const char *const web_config_keys[] = {
	"listen",	   "assets_dir",   "client_id",	      "username",     "password_file",
	"session_ttl",	   "idle_timeout", "lockout_after",   "lockout_time", "secure_cookies",
	"max_connections", "db_pool",	   "request_timeout", NULL,
};

struct web_load {
	struct web_config *wc;
	unsigned seen;
};

static const char *
set_int(int64_t *field, const char *value, int64_t min, int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno || end == value || *end || v < min || v > max)
		return "not a whole number in range";
	*field = v;
	return NULL;
}

static const char *
web_key(struct web_config *wc, const char *name, const char *value)
{
	if (strcmp(name, "listen") == 0) {
		struct sockaddr_storage ss;

		if (config_parse_listen(value, &ss) < 0)
			return "must be HOST:PORT (an IPv4 address, localhost, * or [IPv6])";
		return config_set_string(&wc->listen, value) < 0 ? "out of memory" : NULL;
	}
	if (strcmp(name, "assets_dir") == 0) {
		if (value[0] != '/')
			return "must be an absolute path";
		return config_set_string(&wc->assets_dir, value) < 0 ? "out of memory" : NULL;
	}
	if (strcmp(name, "client_id") == 0) {
		if (!*value || strlen(value) > 128)
			return "must be 1 to 128 characters";
		return config_set_string(&wc->client_id, value) < 0 ? "out of memory" : NULL;
	}
	/* The broker user and its password's file; read at start as [mqtt]'s. */
	if (strcmp(name, "username") == 0) {
		if (strlen(value) > 256)
			return "must be at most 256 characters";
		return config_set_string(&wc->username, value) < 0 ? "out of memory" : NULL;
	}
	if (strcmp(name, "password_file") == 0)
		return config_set_string(&wc->password_file, value) < 0 ? "out of memory" : NULL;
	if (strcmp(name, "session_ttl") == 0)
		return config_set_duration(&wc->session_ttl, value, 60000, 30 * 86400000LL);
	if (strcmp(name, "idle_timeout") == 0)
		return config_set_duration(&wc->idle_timeout, value, 60000, 30 * 86400000LL);
	if (strcmp(name, "lockout_after") == 0)
		return set_int(&wc->lockout_after, value, 1, 1000);
	if (strcmp(name, "lockout_time") == 0)
		return config_set_duration(&wc->lockout_time, value, 1000, 7 * 86400000LL);
	if (strcmp(name, "secure_cookies") == 0) {
		if (strcmp(value, "true") == 0)
			wc->secure_cookies = true;
		else if (strcmp(value, "false") == 0)
			wc->secure_cookies = false;
		else
			return "must be true or false";
		return NULL;
	}
	if (strcmp(name, "max_connections") == 0)
		return set_int(&wc->max_connections, value, 2, 10000);
	if (strcmp(name, "db_pool") == 0)
		return set_int(&wc->db_pool, value, 1, 64);
	if (strcmp(name, "request_timeout") == 0)
		return config_set_duration(&wc->request_timeout, value, 1000, 3600000);
	return "unknown key";
}

static int
foreign_key(void *arg, const char *section, const char *name, const char *value, const char *path,
	    int line, FILE *errors)
{
	struct web_load *ld = arg;
	const char *why;
	int ki = -1;

	if (strcmp(section, "web") != 0)
		return 0; /* cordon-notify's */
	for (int i = 0; web_config_keys[i]; i++)
		if (strcmp(web_config_keys[i], name) == 0)
			ki = i;
	if (ki < 0) {
		fprintf(errors, "%s:%d: unknown key '%s' in section [web]\n", path, line, name);
		return -1;
	}
	if (ld->seen & (1u << ki)) {
		fprintf(errors, "%s:%d: [web] %s is set twice\n", path, line, name);
		return -1;
	}
	ld->seen |= 1u << ki;
	why = web_key(ld->wc, name, value);
	if (why) {
		fprintf(errors, "%s:%d: [web] %s = '%s': %s\n", path, line, name, value, why);
		return -1;
	}
	return 0;
}

int
web_config_init(struct web_config *wc)
{
	int rc;

	memset(wc, 0, sizeof(*wc));
	if ((rc = config_init(&wc->base)) < 0)
		return rc;
	wc->listen = strdup("127.0.0.1:8478");
	wc->assets_dir = strdup(CORDON_WEB_ASSETS);
	wc->client_id = strdup("");
	wc->username = strdup("");
	wc->password_file = strdup("");
	wc->session_ttl = 12 * 3600000LL;
	wc->idle_timeout = 3600000LL;
	wc->lockout_after = 5;
	wc->lockout_time = 15 * 60000LL;
	wc->max_connections = 64;
	wc->db_pool = 4;
	wc->request_timeout = 30000;
	if (!wc->listen || !wc->assets_dir || !wc->client_id || !wc->username ||
	    !wc->password_file) {
		web_config_finish(wc);
		return -ENOMEM;
	}
	return 0;
}

void
web_config_finish(struct web_config *wc)
{
	config_finish(&wc->base);
	free(wc->listen);
	free(wc->assets_dir);
	free(wc->client_id);
	free(wc->username);
	free(wc->password_file);
	memset(wc, 0, sizeof(*wc));
}

int
web_config_load(struct web_config *wc, const char *path, FILE *errors)
{
	struct web_load ld = { .wc = wc };
	int rc = config_load_with(&wc->base, path, errors, foreign_key, &ld);

	if (rc == 0 && !wc->client_id[0]) {
		char host[64] = "localhost", id[160];

		if (gethostname(host, sizeof(host) - 1) < 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(id, sizeof(id), "cordon-web-%s-%ld", host, (long)getpid());
		if (config_set_string(&wc->client_id, id) < 0)
			return -ENOMEM;
	}
	if (rc == 0 && wc->password_file[0] && !wc->username[0]) {
		fprintf(errors,
			"%s: [web] password_file needs [web] username (without it, [mqtt]'s user"
			" and password are used)\n",
			path);
		rc = -EINVAL;
	}
	if (rc == 0 && wc->idle_timeout > wc->session_ttl) {
		fprintf(errors, "%s: [web] idle_timeout is longer than session_ttl\n", path);
		rc = -EINVAL;
	}
	return rc;
}

const char *
web_config_username(const struct web_config *wc)
{
	return wc->username && wc->username[0] ? wc->username : wc->base.mqtt_username;
}

const char *
web_config_password_file(const struct web_config *wc)
{
	return wc->username && wc->username[0] ? wc->password_file : wc->base.mqtt_password_file;
}

void
web_config_print(const struct web_config *wc, FILE *out)
{
	fprintf(out, "[web]\nlisten = %s\nassets_dir = %s\nclient_id = %s\n", wc->listen,
		wc->assets_dir, wc->client_id);
	fprintf(out, "username = %s\npassword_file = %s\n", web_config_username(wc),
		web_config_password_file(wc));
	fprintf(out,
		"session_ttl = %llds\n"
		"idle_timeout = %llds\nlockout_after = %lld\nlockout_time = %llds\n"
		"secure_cookies = %s\nmax_connections = %lld\ndb_pool = %lld\n"
		"request_timeout = %llds\n",
		(long long)wc->session_ttl / 1000, (long long)wc->idle_timeout / 1000,
		(long long)wc->lockout_after, (long long)wc->lockout_time / 1000,
		wc->secure_cookies ? "true" : "false", (long long)wc->max_connections,
		(long long)wc->db_pool, (long long)wc->request_timeout / 1000);
}
