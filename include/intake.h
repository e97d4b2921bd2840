/* intake.h - when intake from the broker pauses and resumes, and the
 * spool's health: its size against max_bytes, the free space of its disk,
 * its directory deleted or replaced (and made again), appends failing.
 * Intake pauses (mqtt_client_pause) before the receive callback would have
 * to wait for space inside Paho's callback. */
#ifndef CORDON_INTAKE_H
#define CORDON_INTAKE_H

#include <stdint.h>

#include "config.h"
#include "spool.h"

struct pipeline;
struct sessions;
struct syncer;

/* Embedded in the daemon; the pointers under "wiring" are its objects. */
struct intake {
	const struct config *cfg;
	/* wiring */
	struct spool *spool;
	struct sessions *sessions; /* the clients that receive (sessions_pause) */
	struct pipeline *pl;	   /* the committed position, release */
	struct syncer *syncer;

	int paused;		      /* intake paused: the spool or its disk is full */
	uint64_t pause_at, resume_at; /* spool bytes */
	int64_t segment_bytes;	      /* the spool's, fixed at the start */
	/* The spool's health as last logged (intake_watch). */
	enum spool_dir_state dir_state;
	int write_err;	       /* -errno: appends fail */
	int recreate_err;      /* the last failure to make the directory again */
	uint64_t disk_reserve; /* pause below this many free bytes on the disk */
	uint64_t disk_free;    /* free bytes on the spool's disk, last look */
	int disk_low;	       /* the pause is for the disk */
	int64_t disk_checked_us;
};

/* The marks and the segment size for `cfg` (segment_bytes is what the
 * spool is to be opened with). */
void intake_init(struct intake *in, const struct config *cfg);
/* After a reload: the new max_bytes (cut to what the segments of the
 * start allow: `cfg`'s spool_max_bytes is lowered then, and the log says
 * so), the spool's limits and sync mode, the pause marks. */
void intake_reconfigure(struct intake *in, struct config *cfg);
/* Pauses intake when the spool reaches its pause mark or its disk is low,
 * resumes once there is room again; nothing changes while `stopping`. */
void intake_check_space(struct intake *in, int stopping);
/* Each tick: the directory and appends (logged once per change), committed
 * space freed, and the directory made again once all it held is committed. */
void intake_watch(struct intake *in);

#endif
