/* daemon.h - cordond's main loop: spool -> normalize -> rules -> alerts,
 * and spool -> store batches. */
#ifndef CORDON_DAEMON_H
#define CORDON_DAEMON_H

#include "config.h"

/* Runs until SIGTERM/SIGINT; returns the process exit code. Takes
 * ownership of `cfg` (config_path is kept for SIGHUP). */
int daemon_run(struct config *cfg, const char *config_path);

#endif
