/* notifier_config.h - cordon-notify's configuration: the shared file read
 * by config.c, plus [notify], [receiver.NAME] and [route.NAME]
 * (docs/notify.md, "Configuration"). */
#ifndef CORDON_NOTIFIER_CONFIG_H
#define CORDON_NOTIFIER_CONFIG_H

#include <stdio.h>

#include "notifier.h"

/* The defaults; 0, or config_init's -ENOMEM or -EINVAL (config.h). */
int notifier_config_init(struct notifier_config *nc) __attribute__((warn_unused_result));
/* Frees everything; `nc` is zeroed. */
void notifier_config_finish(struct notifier_config *nc);
/* Reads `path` over the defaults: the shared sections through config.c,
 * ours through notifier_config_key(), then the checks that need the whole
 * file (every route's receivers exist, escalation complete, what each
 * receiver type needs). Reads url_file and secret_file. Every error is
 * printed as "FILE:LINE: reason" on `errors`. Returns 0, -EINVAL (errors
 * printed) or another negative errno when the file cannot be read. */
int notifier_config_load(struct notifier_config *nc, const char *path, FILE *errors)
	__attribute__((warn_unused_result));
/* config_foreign_fn (config.h) for our sections; `arg` is internal. */
int notifier_config_key(void *arg, const char *section, const char *name, const char *value,
			const char *path, int line, FILE *errors);
/* The broker user cordon-notify connects as, and the file of its password:
 * [notify] username and password_file when username is set, else [mqtt]'s
 * pair (a user is never sent another user's password). "" when none. */
const char *notifier_config_username(const struct notifier_config *nc);
const char *notifier_config_password_file(const struct notifier_config *nc);
/* The effective configuration in INI form; secrets never, their files' names only. */
void notifier_config_print(const struct notifier_config *nc, FILE *out);
/* "wecom", "dingtalk", "webhook", "smtp", "sms". */
const char *notifier_receiver_type_name(enum receiver_type t);

#endif
