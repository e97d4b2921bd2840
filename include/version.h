/* version.h - cordon's version and the run-time versions of the libraries
 * a program runs with: what `--version` prints and the labels of the
 * `cordon_build_info` metric (docs/operations.md, "Versions").
 *
 * The versions are those of the libraries loaded in the process, asked of
 * each library at run time (MQTTAsync_getVersionInfo(), PQlibVersion(),
 * jansson_version_str(), MHD_get_version(), curl_version_info(),
 * sodium_version_string(), OpenSSL_version(), XXH_versionNumber()), not
 * the headers cordon was compiled with: after a library upgrade and a
 * restart, the new one shows. The functions are looked up with
 * dlsym(RTLD_DEFAULT), so this module links none of the libraries: each
 * program lists those it loads (linked, or loaded by another library, as
 * OpenSSL by Paho), and no program loads a library for its --version. */
#ifndef CORDON_VERSION_H
#define CORDON_VERSION_H

#include <stddef.h>
#include <stdio.h>

/* cordon's own version (meson.build's project version). */
const char *version_cordon(void);

/* One library: its name in --version ("paho-mqtt"), its label in
 * cordon_build_info ("paho"), its version ("1.3.11"). */
struct version_lib {
	const char *name;
	const char *label;
	char version[32];
};

#define VERSION_LIBS_MAX 8

/* The libraries of the table loaded in this process, in the table's order
 * (paho-mqtt, libpq, jansson, libmicrohttpd, libcurl, libsodium, openssl,
 * xxhash), into ret (room for VERSION_LIBS_MAX). Returns how many. */
size_t version_libs(struct version_lib ret[VERSION_LIBS_MAX]);

/* Writes --version's text:
 *   PROGRAM VERSION
 *     NAME VERSION       (one line a library, two spaces before)
 * NAME is [a-z0-9-], VERSION has no space. */
void version_print(FILE *f, const char *program);

/* Appends the cordon_build_info gauge (HELP, TYPE and its one sample,
 * value 1) to a metrics text:
 *   cordon_build_info{program="cordond",version="0.1.0",paho="1.3.11",...} 1 */
void version_print_build_info(FILE *f, const char *program);

/* PQlibVersion()'s number as text: 150018 -> "15.18" (10 and later:
 * major * 10000 + minor), 90624 -> "9.6.24" (before 10: major * 10000 +
 * minor * 100 + patch). Returns ret. */
char *version_pq_text(int v, char *ret, size_t size);
/* XXH_versionNumber()'s number as text: 801 -> "0.8.1" (major * 10000 +
 * minor * 100 + release). Returns ret. */
char *version_xxh_text(unsigned v, char *ret, size_t size);

#endif
