/* daemon.c - the main loop (epoll over signalfd, timerfd and eventfds).
 *
 * Two cursors read the spool. The rules cursor normalizes every record
 * once, runs the rules and publishes alerts at once (alerts never wait for
 * PostgreSQL). The same normalized events go into the batch being filled
 * for the store. When the store falls behind (PostgreSQL down or slow)
 * and the batch is full, the store cursor stops where it is and later
 * catches up on its own, normalizing again, while the rules cursor goes on. */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "ingest.h"
#include "log.h"
#include "normalize.h"
#include "rules.h"
#include "spool.h"
#include "store.h"

#define TICK_MS 100
#define STATS_INTERVAL_MS 60000

enum { SRC_SIGNAL = 1, SRC_TIMER, SRC_SPOOL, SRC_STORE };

struct counters {
	uint64_t events;
	uint64_t rejects;
	uint64_t alerts;
};

struct daemon {
	struct config *cfg;
	const char *config_path;
	struct spool *spool;
	struct ingest *ingest;
	struct store *store;
	int epfd, sigfd, timerfd, wakefd, donefd;

	struct spool_reader *rules_rd;	/* ahead: rules and alerts */
	struct spool_reader *store_rd;	/* catch-up when the store lags */
	uint64_t store_pos;		/* records before this are in a batch */
	uint64_t committed;		/* in PostgreSQL */
	struct store_batch *batches[2];
	struct store_batch *filling;
	size_t batch_rows;

	struct norm_context nctx;
	struct rules_config rcfg;
	struct event *events;

	struct counters count;
	struct log_ratelimit reject_rl;
	struct log_ratelimit publish_rl;
	int64_t last_sync_ms, last_stats_ms;
	int stopping;
	int64_t stop_deadline_ms;
	int paused;			/* intake paused: the spool is full */
	uint64_t pause_at, resume_at;	/* spool bytes */
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds east of UTC of the site's zone now (fixed for the run). */
static int64_t
tz_offset(const char *tz)
{
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	time_t now = time(NULL);
	struct tm tm;

	setenv("TZ", tz, 1);
	tzset();
	localtime_r(&now, &tm);
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
	return tm.tm_gmtoff;
}

static void
apply_config(struct daemon *d)
{
	log_set_level((enum log_level)d->cfg->log_level);
	d->nctx.topic_root = d->cfg->topic_root;
	d->nctx.max_clock_skew_us = d->cfg->max_clock_skew * 1000;
	d->nctx.tz_offset_s = tz_offset(d->cfg->site_timezone);
	rules_config_from(&d->rcfg, d->cfg->fever_c, d->cfg->critical_c);
	d->batch_rows = (size_t)d->cfg->pg_batch_rows;
}

/* Intake pauses early enough that what the broker has already sent us
 * (INGEST_RECEIVE_MAXIMUM messages) still fits under max_bytes, and
 * resumes once PostgreSQL has caught up by as much again. Segments are
 * kept small against max_bytes so that releasing them can get there. */
static void
spool_limits(const struct config *cfg, int64_t *ret_segment, uint64_t *ret_pause,
	     uint64_t *ret_resume)
{
	uint64_t max = (uint64_t)cfg->spool_max_bytes;
	uint64_t headroom = (uint64_t)INGEST_RECEIVE_MAXIMUM * ((uint64_t)cfg->max_payload + 512);

	if (headroom > max / 4)
		headroom = max / 4;
	*ret_pause = max - headroom;
	*ret_resume = max - 2 * headroom;
	*ret_segment = cfg->spool_segment_bytes;
	if ((uint64_t)*ret_segment > max / 8)
		*ret_segment = (int64_t)(max / 8);
}

static void
check_spool_space(struct daemon *d)
{
	uint64_t used = spool_bytes(d->spool);

	if (!d->paused && !d->stopping && used >= d->pause_at) {
		log_warn("spool holds %" PRIu64 " of %" PRIu64 " bytes: pausing intake from the broker"
			 " (it keeps our messages) until PostgreSQL catches up",
			 used, (uint64_t)d->cfg->spool_max_bytes);
		ingest_pause(d->ingest);
		d->paused = 1;
	} else if (d->paused && !d->stopping && used <= d->resume_at) {
		log_notice("spool down to %" PRIu64 " bytes: resuming intake", used);
		ingest_resume(d->ingest);
		d->paused = 0;
	}
}

static void
publish_alert(struct daemon *d, const struct alert *a)
{
	char topic[512];
	char *json = alerts_render(a);

	if (!json) {
		log_err("out of memory rendering alert %s", a->alert_id);
		return;
	}
	alerts_topic(d->cfg->topic_root, a, topic, sizeof(topic));
	if (ingest_publish(d->ingest, topic, json, strlen(json), 1, 0) < 0)
		log_limited(&d->publish_rl, LOG_LEVEL_ERR,
			    "cannot queue alert %s on %s", a->alert_id, topic);
	else
		log_notice("alert %s %s %s: %s at gate %s", a->kind, a->state,
			   rules_severity_name(a->severity), a->subject, a->gate);
	d->count.alerts++;
	free(json);
}

/* Normalizes one record. With `rules`, runs the rules on its events; with
 * `batch`, adds its events or its reject to that batch. */
static int
process_record(struct daemon *d, const struct spool_record *rec, int rules,
	       struct store_batch *batch)
{
	struct norm_input in = {
		.topic = rec->topic, .topic_len = rec->topic_len,
		.payload = rec->payload, .payload_len = rec->payload_len,
		.orig_len = rec->orig_len, .received_us = rec->recv_us,
	};
	struct norm_result res;
	int err;

	err = normalize_message(&d->nctx, &in, d->events, NORM_MAX_EVENTS, &res);
	if (err < 0)
		return err;
	if (res.reason) {
		if (rules) {
			d->count.rejects++;
			log_limited(&d->reject_rl, LOG_LEVEL_WARNING, "rejected message on %.*s: %s (%s)",
				    (int)(rec->topic_len > 200 ? 200 : rec->topic_len), rec->topic,
				    res.reason, res.detail);
		}
		if (batch) {
			struct store_reject r = { .received_us = rec->recv_us, .reason = res.reason,
						  .orig_len = rec->orig_len };

			normalize_message_hash(&in, r.key);
			snprintf(r.detail, sizeof(r.detail), "%s", res.detail);
			err = store_batch_add_reject(batch, &r, rec->topic, rec->topic_len,
						     rec->payload, rec->payload_len);
			if (err < 0)
				return err;
		}
		return 0;
	}
	for (size_t i = 0; i < res.nevents; i++) {
		struct alert a;

		if (rules) {
			d->count.events++;
			if (rules_gate_event(&d->rcfg, &d->events[i], &a))
				publish_alert(d, &a);
		}
		if (batch) {
			err = store_batch_add_event(batch, &d->events[i]);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

static int
batch_has_room(struct daemon *d)
{
	return store_batch_rows(d->filling) < d->batch_rows;
}

/* Reads every new record with the rules cursor. */
static void
run_rules(struct daemon *d)
{
	struct spool_record rec;
	int rc;

	while ((rc = spool_reader_next(d->rules_rd, &rec)) == 1) {
		int joined = d->store_pos == rec.pos && batch_has_room(d);

		if (process_record(d, &rec, 1, joined ? d->filling : NULL) < 0) {
			log_err("out of memory processing the spool; retrying");
			spool_reader_seek(d->rules_rd, rec.pos);
			return;
		}
		if (joined) {
			d->store_pos = rec.next;
			d->filling->end_pos = rec.next;
		}
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
}

/* Lets the store cursor catch up with the rules cursor while the batch
 * being filled has room. */
static void
catch_up(struct daemon *d)
{
	uint64_t target = spool_reader_pos(d->rules_rd);
	struct spool_record rec;
	int rc = 0;

	if (d->store_pos >= target)
		return;
	spool_reader_seek(d->store_rd, d->store_pos);
	while (d->store_pos < target && batch_has_room(d) &&
	       (rc = spool_reader_next(d->store_rd, &rec)) == 1) {
		if (process_record(d, &rec, 0, d->filling) < 0) {
			log_err("out of memory processing the spool; retrying");
			return;
		}
		d->store_pos = rec.next;
		d->filling->end_pos = rec.next;
	}
	if (rc < 0)
		log_err("spool read failed: %s", strerror(-rc));
}

/* Hands the filling batch to the store when the store is idle. */
static void
flush(struct daemon *d)
{
	struct store_batch *b = d->filling;

	if (b->end_pos <= d->committed)
		return;
	if (store_submit(d->store, b) < 0)
		return;
	d->filling = b == d->batches[0] ? d->batches[1] : d->batches[0];
	store_batch_clear(d->filling);
}

static void
on_committed(struct daemon *d)
{
	struct store_batch *b = store_take_done(d->store);
	int err;

	if (!b)
		return;
	d->committed = b->end_pos;
	store_batch_clear(b);
	err = spool_save_checkpoint(d->spool, d->committed);
	if (err < 0)
		log_warn("cannot save the local checkpoint: %s", strerror(-err));
	spool_release(d->spool, d->committed);
}

static void
pump(struct daemon *d)
{
	on_committed(d);
	run_rules(d);
	catch_up(d);
	flush(d);
}

static void
log_stats(struct daemon *d)
{
	struct ingest_stats is;
	struct store_stats ss;

	ingest_get_stats(d->ingest, &is);
	store_get_stats(d->store, &ss);
	log_info("stats: received %" PRIu64 ", events %" PRIu64 ", rejects %" PRIu64
		 ", alerts %" PRIu64 ", wrote %" PRIu64 " rows in %" PRIu64
		 " batches, backlog %" PRIu64 " bytes, broker %s, PostgreSQL %s",
		 is.received, d->count.events, d->count.rejects, d->count.alerts,
		 ss.events_written + ss.rejects_written, ss.batches,
		 spool_end(d->spool) - d->committed,
		 is.connected ? "up" : "down", ss.db_up ? "up" : "down");
}

static void
on_tick(struct daemon *d)
{
	int64_t now = mono_ms();

	ingest_tick(d->ingest, now);
	check_spool_space(d);
	if (d->cfg->spool_sync == SPOOL_SYNC_INTERVAL &&
	    now - d->last_sync_ms >= d->cfg->spool_sync_interval) {
		int err = spool_sync(d->spool);

		if (err < 0)
			log_err("spool fdatasync failed: %s", strerror(-err));
		d->last_sync_ms = now;
	}
	if (now - d->last_stats_ms >= STATS_INTERVAL_MS) {
		log_stats(d);
		d->last_stats_ms = now;
	}
	pump(d);
}

static int
handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!d->stopping) {
				log_notice("received %s: stopping intake, draining the spool to PostgreSQL"
					   " (at most %lld s)", strsignal((int)si.ssi_signo),
					   (long long)d->cfg->shutdown_timeout / 1000);
				d->stopping = 1;
				d->stop_deadline_ms = mono_ms() + d->cfg->shutdown_timeout;
				ingest_stop(d->ingest, 2000);
			}
			break;
		case SIGHUP:
			log_notice("SIGHUP: configuration reload is not implemented yet; keeping the current one");
			break;
		default:
			break;
		}
	}
	return 0;
}

static int
add_fd(struct daemon *d, int fd, int tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)tag };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void
drain_fd(int fd)
{
	eventfd_t v;

	if (eventfd_read(fd, &v) < 0) {
		/* EAGAIN: nothing pending */
	}
}

static int
setup(struct daemon *d)
{
	struct spool_options so = {
		.dir = d->cfg->spool_dir, .max_bytes = d->cfg->spool_max_bytes,
		.segment_bytes = d->cfg->spool_segment_bytes,
		.max_payload = d->cfg->max_payload, .sync = d->cfg->spool_sync,
	};
	struct itimerspec its = { { 0, TICK_MS * 1000000 }, { 0, TICK_MS * 1000000 } };
	struct store_options sto;
	sigset_t mask;
	uint64_t start;
	int err;

	d->epfd = d->sigfd = d->timerfd = d->wakefd = d->donefd = -1;
	d->reject_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	d->publish_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10, 10);
	apply_config(d);

	d->events = calloc(NORM_MAX_EVENTS, sizeof(*d->events));
	d->batches[0] = calloc(1, sizeof(struct store_batch));
	d->batches[1] = calloc(1, sizeof(struct store_batch));
	if (!d->events || !d->batches[0] || !d->batches[1])
		return -ENOMEM;
	d->filling = d->batches[0];

	spool_limits(d->cfg, &so.segment_bytes, &d->pause_at, &d->resume_at);
	err = spool_open(&so, &d->spool);
	if (err < 0) {
		log_err("cannot open the spool in %s: %s", so.dir, strerror(-err));
		return err;
	}
	start = spool_load_checkpoint(d->spool);
	if (start < spool_first(d->spool))
		start = spool_first(d->spool);
	if (start > spool_end(d->spool))
		start = spool_end(d->spool);
	d->committed = d->store_pos = start;
	log_info("spool %s: replaying from position %" PRIu64 " (%" PRIu64 " bytes not yet in PostgreSQL)",
		 so.dir, start, spool_end(d->spool) - start);
	if ((err = spool_reader_create(d->spool, start, &d->rules_rd)) < 0 ||
	    (err = spool_reader_create(d->spool, start, &d->store_rd)) < 0)
		return err;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sigfd < 0 || d->timerfd < 0 || d->wakefd < 0 || d->donefd < 0 || d->epfd < 0)
		return -errno;
	if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0)
		return -errno;
	if ((err = add_fd(d, d->sigfd, SRC_SIGNAL)) < 0 ||
	    (err = add_fd(d, d->timerfd, SRC_TIMER)) < 0 ||
	    (err = add_fd(d, d->wakefd, SRC_SPOOL)) < 0 ||
	    (err = add_fd(d, d->donefd, SRC_STORE)) < 0)
		return err;

	sto.conninfo = d->cfg->pg_conninfo;
	sto.instance = d->cfg->mqtt_client_id;
	sto.spool_id = spool_id(d->spool);
	sto.topic_root = d->cfg->topic_root;
	err = store_create(&sto, d->donefd, &d->store);
	if (err < 0) {
		log_err("cannot start the store: %s", strerror(-err));
		return err;
	}
	err = ingest_create(d->cfg, d->spool, d->wakefd, &d->ingest);
	if (err < 0)
		return err;
	err = ingest_start(d->ingest);
	if (err < 0)
		return err;
	d->last_sync_ms = d->last_stats_ms = mono_ms();
	return 0;
}

static void
teardown(struct daemon *d)
{
	ingest_stop(d->ingest, 1000);
	ingest_destroy(d->ingest);
	store_destroy(d->store);
	spool_reader_destroy(d->rules_rd);
	spool_reader_destroy(d->store_rd);
	spool_close(d->spool);
	store_batch_free(d->batches[0]);
	store_batch_free(d->batches[1]);
	free(d->events);
	for (int *fd = &d->epfd; fd <= &d->donefd; fd++)
		if (*fd >= 0)
			close(*fd);
}

int
daemon_run(struct config *cfg, const char *config_path)
{
	struct daemon d = { .cfg = cfg, .config_path = config_path };
	int rc = 0;

	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	log_notice("cordond started: broker %s, spool %s", cfg->mqtt_uri, cfg->spool_dir);
	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(d.epfd, evs, 8, -1);

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			rc = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case SRC_SIGNAL:
				handle_signal(&d);
				break;
			case SRC_TIMER: {
				uint64_t ticks;

				if (read(d.timerfd, &ticks, sizeof(ticks)) < 0) {
					/* EAGAIN */
				}
				on_tick(&d);
				break;
			}
			case SRC_SPOOL:
				drain_fd(d.wakefd);
				pump(&d);
				break;
			case SRC_STORE:
				drain_fd(d.donefd);
				pump(&d);
				break;
			}
		}
		if (d.stopping) {
			pump(&d);
			if (d.committed >= spool_end(d.spool)) {
				log_notice("drained: everything received is in PostgreSQL");
				break;
			}
			if (mono_ms() >= d.stop_deadline_ms) {
				log_warn("shutdown deadline reached with %" PRIu64
					 " spool bytes not yet in PostgreSQL; they are loaded at the next start",
					 spool_end(d.spool) - d.committed);
				break;
			}
		}
	}
	log_stats(&d);
	teardown(&d);
	log_notice("cordond stopped");
	return rc;
}
