/* intake.c - the spool's space and health, and the intake pause. */
#include "intake.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "clocks.h"
#include "log.h"
#include "mqtt_client.h"
#include "pipeline.h"
#include "sessions.h"
#include "syncer.h"

/* Intake pauses early enough that what the broker has already sent us
 * (MQTT_CLIENT_RECEIVE_MAXIMUM messages) still fits under max_bytes, and
 * resumes once PostgreSQL has caught up by as much again. Segments are
 * kept small against max_bytes so that releasing them can get there. */
static void
spool_limits(const struct config *cfg, int64_t *ret_segment, uint64_t *ret_pause,
	     uint64_t *ret_resume)
{
	uint64_t max = (uint64_t)cfg->spool_max_bytes;
	uint64_t headroom =
		(uint64_t)MQTT_CLIENT_RECEIVE_MAXIMUM * ((uint64_t)cfg->max_payload + 512);

	if (headroom > max / 4)
		headroom = max / 4;
	*ret_pause = max - headroom;
	*ret_resume = max - 2 * headroom;
	*ret_segment = cfg->spool_segment_bytes;
	if ((uint64_t)*ret_segment > max / 8)
		*ret_segment = (int64_t)(max / 8);
	/* The spool keeps each segment file open (a deleted one still
	 * reads): at most about 512 of them, well within the usual limit of
	 * 1,024 open files. */
	if ((uint64_t)*ret_segment < max / 512)
		*ret_segment = (int64_t)(max / 512);
}

void
intake_init(struct intake *in, const struct config *cfg)
{
	memset(in, 0, sizeof(*in));
	in->cfg = cfg;
	spool_limits(cfg, &in->segment_bytes, &in->pause_at, &in->resume_at);
}

void
intake_reconfigure(struct intake *in, struct config *cfg)
{
	int64_t seg;

	in->cfg = cfg;
	/* Segments keep the size they got at the start: a max_bytes
	 * beyond 512 of them would open more files than the limit
	 * allows (EMFILE) before the spool is full. */
	if ((uint64_t)cfg->spool_max_bytes > 512 * (uint64_t)in->segment_bytes) {
		log_warn("reload: [spool] max_bytes %lld needs segments of at least %lld "
			 "bytes (at most 512 files open); they are %lld bytes until a "
			 "restart: using max_bytes %lld",
			 (long long)cfg->spool_max_bytes, (long long)(cfg->spool_max_bytes / 512),
			 (long long)in->segment_bytes, (long long)(512 * in->segment_bytes));
		cfg->spool_max_bytes = 512 * in->segment_bytes;
	}
	spool_set_limits(in->spool, cfg->spool_max_bytes, cfg->spool_sync);
	spool_limits(cfg, &seg, &in->pause_at, &in->resume_at);
}

/* Free bytes on the spool's file system for us (f_bavail), and sets
 * in->disk_reserve: what the messages already on their way to us may need
 * (the pause's headroom), but at most a quarter of the file system, so that
 * a disk smaller than that still takes messages. Looked at most every
 * millisecond. Returns UINT64_MAX when the file system does not say. */
static uint64_t
disk_free(struct intake *in)
{
	int64_t now = clocks_mono_us();
	struct statvfs sv;

	if (now - in->disk_checked_us < 1000 && in->disk_checked_us)
		return in->disk_free;
	in->disk_checked_us = now;
	if (statvfs(in->cfg->spool_dir, &sv) < 0 || sv.f_blocks == 0) {
		in->disk_free = UINT64_MAX;
		return in->disk_free;
	}
	in->disk_reserve =
		(uint64_t)MQTT_CLIENT_RECEIVE_MAXIMUM * ((uint64_t)in->cfg->max_payload + 512);
	if (in->disk_reserve > (uint64_t)sv.f_blocks * sv.f_frsize / 4)
		in->disk_reserve = (uint64_t)sv.f_blocks * sv.f_frsize / 4;
	in->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	return in->disk_free;
}

/* Pauses intake before the spool reaches max_bytes or its disk fills up
 * (the receive callback would then have to wait inside Paho, holding its
 * lock, and no alert could go out), and resumes once PostgreSQL has caught
 * up and committed segments are deleted: when twice the reserve is free,
 * or the reserve with nothing left to commit (on a disk that something
 * else fills, twice may never come back). */
void
intake_check_space(struct intake *in, int stopping)
{
	uint64_t used = spool_bytes(in->spool);
	uint64_t avail = disk_free(in);
	int low = avail < in->disk_reserve;

	if (!in->paused && !stopping && (used >= in->pause_at || low)) {
		if (low)
			log_warn("the spool's disk has %" PRIu64 " bytes free (below %" PRIu64 "):"
				 " pausing intake from the broker (it keeps our messages) until"
				 " PostgreSQL catches up and committed spool space is freed",
				 avail, in->disk_reserve);
		else
			log_warn("spool holds %" PRIu64 " of %" PRIu64
				 " bytes: pausing intake from the"
				 " broker (it keeps our messages) until PostgreSQL catches up",
				 used, (uint64_t)in->cfg->spool_max_bytes);
		sessions_pause(in->sessions);
		in->paused = 1;
		in->disk_low = low;
		syncer_hurry(in->syncer, low);
		spool_set_low_disk(in->spool, low);
	} else if (in->paused && !stopping && used <= in->resume_at &&
		   (avail >= 2 * in->disk_reserve ||
		    (avail >= in->disk_reserve && pipeline_pending(in->pl) == 0))) {
		log_notice("spool down to %" PRIu64 " bytes, %" PRIu64 " bytes free on its disk:"
			   " resuming intake",
			   used, avail);
		sessions_resume(in->sessions);
		in->paused = 0;
		in->disk_low = 0;
		syncer_hurry(in->syncer, 0);
		spool_set_low_disk(in->spool, 0);
	}
}

/* The spool's health, each tick: the directory still the one we opened,
 * appends working (each logged once per change of state); committed
 * space freed (the last commit may have come before the disk filled);
 * after the directory was deleted or replaced, once everything still
 * readable through the open files is committed, the directory made again
 * (same spool id, positions going on), so that intake resumes. */
void
intake_watch(struct intake *in)
{
	enum spool_dir_state ds = spool_check_dir(in->spool);
	int werr = spool_write_error(in->spool);

	if (ds != in->dir_state && ds != SPOOL_DIR_OK)
		log_err("spool directory %s %s while cordond runs: no message is acknowledged until"
			" it is back (the broker keeps them); the %" PRIu64 " bytes not yet in"
			" PostgreSQL are read from the files still open and go there, but are lost"
			" if cordond stops first",
			in->cfg->spool_dir,
			ds == SPOOL_DIR_DELETED ? "was deleted" :
						  "now names another directory (remounted?)",
			pipeline_pending(in->pl));
	in->dir_state = ds;
	if (werr != in->write_err) {
		if (werr)
			log_err("spool not writable: %s; no message is acknowledged (the broker keeps"
				" them) until an append succeeds; committed segments are deleted to"
				" make room",
				strerror(-werr));
		else
			log_notice("spool writable again: intake resumes");
		in->write_err = werr;
	}
	pipeline_release(in->pl);
	if (ds != SPOOL_DIR_OK && pipeline_pending(in->pl) == 0) {
		int err = spool_recreate(in->spool, in->pl->committed);

		if (err == 0) {
			syncer_force(in->syncer); /* the file went with the directory */
			log_notice("spool directory %s made again (spool %s, positions go on from"
				   " %" PRIu64
				   "): everything before is in PostgreSQL; intake resumes",
				   in->cfg->spool_dir, spool_id(in->spool), spool_end(in->spool));
			in->dir_state = SPOOL_DIR_OK;
			in->recreate_err = 0;
		} else if (err != in->recreate_err) {
			log_err("cannot make the spool directory %s again: %s; trying again",
				in->cfg->spool_dir,
				err == -EEXIST ?
					"another spool is there (empty the directory, or restart cordond to"
					" take that spool)" :
					strerror(-err));
			in->recreate_err = err;
		}
	}
}
