/* syncer.h - the spool's sync thread: with `[spool] sync = interval` it
 * fdatasyncs the spool (and msyncs the packet identifier table) every
 * sync_interval; whatever the mode, it saves the replay memory
 * (mqtt_client_save_replays) every 10 s, every second while the spool's
 * disk is low, or at once when asked. The main loop reads what the saved
 * file covers (syncer_covered) before it releases spool segments. */
#ifndef CORDON_SYNCER_H
#define CORDON_SYNCER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "spool.h"

struct sessions;
struct spool;

/* Embedded in the daemon. */
struct syncer {
	struct spool *spool;
	struct sessions *sessions; /* every MQTT client's memory and table */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	int stop;	     /* under lock, as the two below */
	enum spool_sync_mode mode;
	int64_t interval_ms;
	/* The thread saves the replay memories (save_replays()); what their
	 * files cover bounds the spool's release (syncer_covered()). */
	_Atomic int replay_err;	  /* the last save's error, 0: none */
	_Atomic int replay_hurry; /* the disk is low: save every second */
	_Atomic int replay_force; /* save at the next wake (the file went) */
	_Atomic int replay_ready; /* restored: the thread may save */
	int64_t replay_saved_ms;  /* the thread's */
};

void syncer_init(struct syncer *s, struct spool *spool);
/* Starts the thread with the mode and interval of `cfg`; 0 or -errno. */
int syncer_start(struct syncer *s, const struct config *cfg) __attribute__((warn_unused_result));
/* Sets the thread's mode and interval (SIGHUP). */
void syncer_reconfigure(struct syncer *s, const struct config *cfg);
/* Restores the instance's client's replay memory from its file and the
 * spool, saves it once, and lets the thread save every client's of
 * `sessions` from then on (a shard session restores its own at its
 * start); 0 or -errno. */
int syncer_restore_replays(struct syncer *s, struct sessions *sessions)
	__attribute__((warn_unused_result));
/* Stops the thread (nothing is appended any more), then saves the replay
 * memory a last time. Accepts a syncer never started. */
void syncer_stop(struct syncer *s);
/* The spool position the replay memories' files cover (the lowest of
 * every client's: sessions_covered()), a client whose saves fail counting
 * as UINT64_MAX (a full disk must not keep the spool from freeing what
 * PostgreSQL has); 0 before syncer_restore_replays(). Main thread. */
uint64_t syncer_covered(const struct syncer *s);
/* The spool's disk is low: save every second (its release waits). */
void syncer_hurry(struct syncer *s, int low);
/* Save at the thread's next wake (the file went with the directory). */
void syncer_force(struct syncer *s);

#endif
