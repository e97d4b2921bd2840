/* syncer.c - the spool's sync thread and the replay memory's saves. A sync
 * takes milliseconds on a busy disk and a save writes up to 20 MiB: in the
 * main loop either would hold up the alerts behind it. */
#include "syncer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clocks.h"
#include "log.h"
#include "mqtt_client.h"
#include "sessions.h"
#include "spool.h"

/* Saves the replay memory every REPLAY_SAVE_MS, every second while the
 * spool's disk is low (its release waits for the save), or now (force).
 * From the sync thread (writing up to 20 MiB and a sync would hold up the
 * alerts in the main loop), and before it starts and after it stops. */
#define REPLAY_SAVE_MS 10000

static void
save_replays(struct syncer *s, int64_t now_ms, int force)
{
	int err;

	if (atomic_exchange(&s->replay_force, 0))
		force = 1;
	if (!force &&
	    now_ms - s->replay_saved_ms < (atomic_load(&s->replay_hurry) ? 1000 : REPLAY_SAVE_MS))
		return;
	err = sessions_save_replays(s->sessions);
	s->replay_saved_ms = now_ms;
	if (err < 0) {
		if (err != atomic_load(&s->replay_err) && spool_check_dir(s->spool) == SPOOL_DIR_OK)
			log_warn(
				"cannot save the replay memory in the spool directory: %s; until"
				" a save succeeds, a restart may judge a retained message again once",
				strerror(-err));
		atomic_store(&s->replay_err, err);
		return;
	}
	if (atomic_load(&s->replay_err))
		log_notice("replay memory saved again");
	atomic_store(&s->replay_err, 0);
}

/* `[spool] sync = interval`: fdatasyncs the spool every interval_ms. The
 * same thread saves the replay memory (save_replays()), whatever the sync
 * mode. */
static void *
sync_main(void *arg)
{
	struct syncer *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += s->interval_ms / 1000;
		ts.tv_nsec += s->interval_ms % 1000 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		if (!s->stop && s->mode == SPOOL_SYNC_INTERVAL) {
			int err;

			pthread_mutex_unlock(&s->lock);
			err = spool_sync(s->spool);
			if (err < 0)
				log_err("spool fdatasync failed: %s", strerror(-err));
			if (atomic_load(&s->replay_ready) &&
			    (err = sessions_sync_replays(s->sessions)) < 0)
				log_err("msync of the packet identifier table failed: %s",
					strerror(-err));
			pthread_mutex_lock(&s->lock);
		}
		if (!s->stop && atomic_load(&s->replay_ready)) {
			pthread_mutex_unlock(&s->lock);
			save_replays(s, clocks_mono_ms(), 0);
			pthread_mutex_lock(&s->lock);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void
syncer_init(struct syncer *s, struct spool *spool)
{
	memset(s, 0, sizeof(*s));
	s->spool = spool;
}

void
syncer_reconfigure(struct syncer *s, const struct config *cfg)
{
	pthread_mutex_lock(&s->lock);
	s->mode = cfg->spool_sync;
	s->interval_ms = cfg->spool_sync_interval; /* at least 1 (config.c) */
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int
syncer_start(struct syncer *s, const struct config *cfg)
{
	pthread_condattr_t attr;
	int err;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->lock, NULL);
	syncer_reconfigure(s, cfg);
	err = pthread_create(&s->thread, NULL, sync_main, s);
	if (err != 0)
		return -err;
	s->started = 1;
	return 0;
}

int
syncer_restore_replays(struct syncer *s, struct sessions *sessions)
{
	uint64_t covered;
	int err;

	s->sessions = sessions;
	if ((err = mqtt_client_restore_replays(sessions_instance(sessions), &covered)) < 0) {
		log_err("cannot read the spool to restore the replay memory: %s", strerror(-err));
		return err;
	}
	save_replays(s, clocks_mono_ms(), 1);
	atomic_store(&s->replay_ready, 1);
	return 0;
}

void
syncer_stop(struct syncer *s)
{
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->started = 0;
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
	}
	/* nothing is appended any more; its saves end */
	if (atomic_load(&s->replay_ready))
		save_replays(s, clocks_mono_ms(), 1);
}

uint64_t
syncer_covered(const struct syncer *s)
{
	return atomic_load(&s->replay_ready) ? sessions_covered(s->sessions) : 0;
}

void
syncer_hurry(struct syncer *s, int low)
{
	atomic_store(&s->replay_hurry, low);
}

void
syncer_force(struct syncer *s)
{
	atomic_store(&s->replay_force, 1);
}
