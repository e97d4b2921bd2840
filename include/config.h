/* config.h - the INI configuration, driven by one key table */
#ifndef CORDON_CONFIG_H
#define CORDON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"

/* Durations are in milliseconds, sizes in bytes. */
struct config {
	char *mqtt_uri;
	char *mqtt_client_id;
	char *mqtt_username;
	char *mqtt_password_file;
	char *mqtt_ca_file;
	char *mqtt_cert_file;
	char *mqtt_key_file;
	char *topic_root;
	int64_t mqtt_keepalive;
	int64_t mqtt_session_expiry;

	char *pg_conninfo;
	int64_t pg_batch_rows;

	char *spool_dir;
	int64_t spool_max_bytes;
	int64_t spool_segment_bytes;
	int spool_sync; /* enum spool_sync_mode (spool.h) */
	int64_t spool_sync_interval;

	char *site_timezone;
	char *id_key_file;
	int64_t max_clock_skew;
	int64_t max_payload;
	int64_t retention_days; /* 0: keep forever */

	double fever_c;
	double critical_c;
	int64_t recheck_window;
	int64_t check_interval;
	int64_t check_grace;
	int64_t silence_timeout;
	int64_t exit_quota;
	int64_t exit_window;
	int64_t disinfection_interval;
	int64_t hotline_medical_limit;
	int64_t hotline_other_limit;
	int64_t repeat_interval;
	int64_t max_open_alerts;
	int64_t cards_per_household;
	int64_t need_assign_limit;
	int64_t call_deadline; /* seconds after local midnight */
	int64_t dropoff_limit;

	int64_t shutdown_timeout;
	char *metrics_listen;

	/* [cluster] (docs/scaling.md): 0 shards = not clustered */
	int64_t cluster_shards;
	bool cluster_discovery; /* shard 0 takes the sites no shard took (handover.h) */
	int64_t cluster_lease_time;
	char *cluster_session_prefix;
	int log_level;
};

/* Fills `cfg` with the defaults of the key table; returns 0, -ENOMEM, or
 * -EINVAL when this machine refuses a default (the default [site] timezone's
 * file missing under /usr/share/zoneinfo: no tzdata), after writing
 * "[section] key: the default 'v' is refused here: reason" to stderr. */
int config_init(struct config *cfg) __attribute__((warn_unused_result));

/* What config_init's negative return means, for a fatal message. */
const char *config_init_strerror(int rc);
/* Releases the strings of `cfg`. Accepts a zeroed or half-built config. */
void config_finish(struct config *cfg);
/* Reads `path` over the defaults. Every error is printed to `errors` as
 * "FILE:LINE: reason"; returns 0, or -EINVAL when any error was found, or
 * another negative errno when the file cannot be read. */
int config_load(struct config *cfg, const char *path, FILE *errors)
	__attribute__((warn_unused_result));
/* One file serves every daemon: cordond's sections are the key table's;
 * [notify], [receiver.NAME] and [route.NAME] are cordon-notify's, [web]
 * cordon-web's. config_load() accepts those without reading them; a
 * daemon that owns them passes `foreign`, called for each of their keys
 * with the key's FILE and LINE, which prints its errors to `errors` and
 * returns 0 or -1. */
typedef int config_foreign_fn(void *arg, const char *section, const char *name, const char *value,
			      const char *path, int line, FILE *errors);
/* Whether `section` belongs to another daemon (the list above). */
bool config_section_foreign(const char *section);
int config_load_with(struct config *cfg, const char *path, FILE *errors, config_foreign_fn *foreign,
		     void *arg) __attribute__((warn_unused_result));
/* Prints the effective configuration in INI form (secrets' files only). */
void config_print(const struct config *cfg, FILE *out);

/* For SIGHUP: every key of `cfg` that cannot change without a restart
 * and differs from `running` is set back to the running value and said so
 * on `out`; returns how many. */
int config_keep_restart_keys(struct config *cfg, const struct config *running, FILE *out);

/* A secret from its file (a password, a robot's URL with its key): the
 * first line, without its end. Returns a malloc'ed string, or NULL with
 * errno set (EINVAL: empty, or over 1 KiB). The buffer it read through is
 * zeroed. Shared by cordond and cordon-notify. */
char *config_read_secret(const char *path) __attribute__((warn_unused_result));

/* Zeroes and frees a string config_read_secret returned; NULL is fine. */
void config_free_secret(char *secret);

/* The setters of the sections config.c leaves to another daemon
 * ([notify], [receiver.*], [route.*], [web]): config_set_string() replaces
 * *field with a copy of value (0 or -ENOMEM); config_set_duration() stores
 * value in ms when it is a duration ("0" too) within min..max, else
 * returns the reason for a FILE:LINE message (NULL on success). */
int config_set_string(char **field, const char *value) __attribute__((warn_unused_result));
const char *config_set_duration(int64_t *field, const char *value, int64_t min, int64_t max)
	__attribute__((warn_unused_result));

/* A listen address: "HOST:PORT" with HOST an IPv4 address, "localhost"
 * (127.0.0.1) or "*" (every address), or "[IPv6]:PORT"; port 1..65535.
 * Fills *ret (zeroed first) and returns AF_INET or AF_INET6, or -EINVAL.
 * [metrics] listen, [notify] metrics_listen, [web] listen. */
int config_parse_listen(const char *s, struct sockaddr_storage *ret)
	__attribute__((warn_unused_result));

/* [mqtt] uri: 1 to CONFIG_MAX_URIS broker URIs separated by commas
 * (blanks around each are ignored), each "tcp://HOST[:PORT]" or
 * "ssl://HOST[:PORT]", all of one scheme (Paho keeps the first one's TLS
 * setting for the whole list); HOST a name ([A-Za-z0-9._-]) or
 * "[IPv6]", PORT 1..65535 (Paho's default: 1883, 8883 for ssl://).
 * On success fills *ret (its own copy of the list: free it with
 * config_uris_free()) and returns NULL; otherwise returns the reason, a
 * static string for a FILE:LINE message, and leaves *ret zeroed. */
#define CONFIG_MAX_URIS 16
struct config_uris {
	char *buf;		    /* the URIs, each NUL-terminated */
	char *uri[CONFIG_MAX_URIS]; /* each URI, pointing into buf */
	int count;		    /* 1..CONFIG_MAX_URIS */
	bool tls;		    /* ssl:// */
};
const char *config_parse_uris(const char *list, struct config_uris *ret)
	__attribute__((warn_unused_result));
/* Frees what config_parse_uris() made; accepts a zeroed struct. */
void config_uris_free(struct config_uris *u);

/* Parse helpers, shared with cordonctl: "30s", "5m", "12h", "100ms",
 * "2d" -> milliseconds; "64KiB", "1GiB", "512" -> bytes. */
int config_parse_duration(const char *s, int64_t *ret_ms) __attribute__((warn_unused_result));
int config_parse_size(const char *s, int64_t *ret_bytes) __attribute__((warn_unused_result));
/* "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59, two digits each) -> seconds
 * after midnight; 0 or -EINVAL. */
int config_parse_time_of_day(const char *s, int64_t *ret_s) __attribute__((warn_unused_result));

#endif
