/* version.c - cordon's version and its libraries' run-time versions
 * (include/version.h). Each library's own version call is found with
 * dlsym(RTLD_DEFAULT): a library the program does not load is not named,
 * and none is loaded for this. The headers below give only types. */
#include "version.h"

#include <MQTTAsync.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <string.h>

#ifndef CORDON_VERSION
#define CORDON_VERSION "0"
#endif

const char *
version_cordon(void)
{
	return CORDON_VERSION;
}

char *
version_pq_text(int v, char *ret, size_t size)
{
	if (v >= 100000)
		snprintf(ret, size, "%d.%d", v / 10000, v % 10000);
	else
		snprintf(ret, size, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
	return ret;
}

char *
version_xxh_text(unsigned v, char *ret, size_t size)
{
	snprintf(ret, size, "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
	return ret;
}

/* The address of `symbol` in the process, or NULL when no library loaded
 * defines it. */
static void *
find(const char *symbol)
{
	return dlsym(RTLD_DEFAULT, symbol);
}

/* Paho's getVersionInfo(): NULL-terminated name/value pairs, one of them
 * "Version" (MQTTAsync.h; MQTTClient_getVersionInfo() has the same
 * shape). The asynchronous library first: the daemons load it,
 * cordonctl only the synchronous one. */
static int
paho(char *buf, size_t size)
{
	typedef MQTTAsync_nameValue *(*info_fn)(void);
	info_fn fn = (info_fn)find("MQTTAsync_getVersionInfo");

	if (!fn)
		fn = (info_fn)find("MQTTClient_getVersionInfo");
	if (!fn)
		return 0;
	for (const MQTTAsync_nameValue *nv = fn(); nv && nv->name; nv++)
		if (strcmp(nv->name, "Version") == 0 && nv->value) {
			snprintf(buf, size, "%s", nv->value);
			return 1;
		}
	return 0;
}

static int
libpq(char *buf, size_t size)
{
	typedef int (*fn_t)(void);
	fn_t fn = (fn_t)find("PQlibVersion");

	if (!fn)
		return 0;
	version_pq_text(fn(), buf, size);
	return 1;
}

/* A library whose call returns its version as a string. */
static int
text_of(const char *symbol, char *buf, size_t size)
{
	typedef const char *(*fn_t)(void);
	fn_t fn = (fn_t)find(symbol);
	const char *v = fn ? fn() : NULL;

	if (!v)
		return 0;
	snprintf(buf, size, "%s", v);
	return 1;
}

/* jansson_version_str(): jansson 2.13 and later (Debian 12: 2.14). */
static int
jansson(char *buf, size_t size)
{
	return text_of("jansson_version_str", buf, size);
}

static int
microhttpd(char *buf, size_t size)
{
	return text_of("MHD_get_version", buf, size);
}

static int
sodium(char *buf, size_t size)
{
	return text_of("sodium_version_string", buf, size);
}

static int
curl(char *buf, size_t size)
{
	typedef curl_version_info_data *(*fn_t)(CURLversion);
	fn_t fn = (fn_t)find("curl_version_info");
	const curl_version_info_data *d = fn ? fn(CURLVERSION_NOW) : NULL;

	if (!d || !d->version)
		return 0;
	snprintf(buf, size, "%s", d->version);
	return 1;
}

/* OpenSSL_version(OPENSSL_VERSION_STRING): "3.0.19" (OpenSSL 3). */
static int
openssl(char *buf, size_t size)
{
	typedef const char *(*fn_t)(int);
	fn_t fn = (fn_t)find("OpenSSL_version");
	const char *v = fn ? fn(OPENSSL_VERSION_STRING) : NULL;

	if (!v)
		return 0;
	snprintf(buf, size, "%s", v);
	return 1;
}

static int
xxhash(char *buf, size_t size)
{
	typedef unsigned (*fn_t)(void);
	fn_t fn = (fn_t)find("XXH_versionNumber");

	if (!fn)
		return 0;
	version_xxh_text(fn(), buf, size);
	return 1;
}

/* The table: name in --version, label in cordon_build_info, the call.
 * inih and libsystemd have no call that tells their version. */
static const struct {
	const char *name, *label;
	int (*get)(char *buf, size_t size);
} libs[VERSION_LIBS_MAX] = {
	{ "paho-mqtt", "paho", paho },	   { "libpq", "libpq", libpq },
	{ "jansson", "jansson", jansson }, { "libmicrohttpd", "libmicrohttpd", microhttpd },
	{ "libcurl", "libcurl", curl },	   { "libsodium", "libsodium", sodium },
	{ "openssl", "openssl", openssl }, { "xxhash", "xxhash", xxhash },
};

size_t
version_libs(struct version_lib ret[VERSION_LIBS_MAX])
{
	size_t n = 0;

	for (size_t i = 0; i < VERSION_LIBS_MAX; i++) {
		struct version_lib *l = &ret[n];

		if (!libs[i].get(l->version, sizeof(l->version)))
			continue;
		/* No space, quote or backslash: one word, and a label value
		 * as it is. */
		for (char *c = l->version; *c; c++)
			if (*c == ' ' || *c == '"' || *c == '\\')
				*c = '_';
		l->name = libs[i].name;
		l->label = libs[i].label;
		n++;
	}
	return n;
}

void
version_print(FILE *f, const char *program)
{
	struct version_lib l[VERSION_LIBS_MAX];
	size_t n = version_libs(l);

	fprintf(f, "%s %s\n", program, version_cordon());
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %s %s\n", l[i].name, l[i].version);
}

void
version_print_build_info(FILE *f, const char *program)
{
	struct version_lib l[VERSION_LIBS_MAX];
	size_t n = version_libs(l);

	fprintf(f,
		"# HELP cordon_build_info The program, cordon's version and the versions of the"
		" libraries it runs with, as labels; always 1.\n"
		"# TYPE cordon_build_info gauge\n"
		"cordon_build_info{program=\"%s\",version=\"%s\"",
		program, version_cordon());
	for (size_t i = 0; i < n; i++)
		fprintf(f, ",%s=\"%s\"", l[i].label, l[i].version);
	fputs("} 1\n", f);
}
