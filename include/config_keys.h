/* config_keys.h - the key table behind config.c (for the config tests) */
#ifndef CORDON_CONFIG_KEYS_H
#define CORDON_CONFIG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum config_key_type {
	KEY_STRING,
	KEY_URIS,	 /* a string: a list of broker URIs (config_parse_uris) */
	KEY_TOPIC,	 /* one MQTT topic level: [A-Za-z0-9_-]{1,64} */
	KEY_TIMEZONE,	 /* a zone under /usr/share/zoneinfo, e.g. Asia/Shanghai */
	KEY_DURATION,	 /* int64_t milliseconds */
	KEY_SIZE,	 /* int64_t bytes */
	KEY_INT,	 /* int64_t */
	KEY_TEMP,	 /* double, degrees C */
	KEY_SYNC,	 /* int, enum spool_sync_mode */
	KEY_LEVEL,	 /* int, enum log_level */
	KEY_TIME_OF_DAY, /* int64_t seconds after local midnight, written HH:MM */
	KEY_BOOL,	 /* bool: yes | no */
};

struct config_key {
	const char *section;
	const char *name;
	enum config_key_type type;
	size_t offset;
	const char *default_value;
	int64_t min, max; /* for DURATION, SIZE and INT */
	int reloadable;	  /* SIGHUP applies it without a restart */
	const char *doc;
};

/* Terminated by an entry whose section is NULL. */
extern const struct config_key config_keys[];

void config_format_value(const struct config *cfg, const struct config_key *k, char *buf,
			 size_t len);

#endif
