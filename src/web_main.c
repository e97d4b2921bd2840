/* web_main.c - cordon-web: the operator console's server (issue 18,
 * docs/web.md). argv, the configuration, then the loop: signals through
 * signalfd, sd_notify READY / WATCHDOG / STATUS, the purge of expired
 * sessions. The HTTP threads (libmicrohttpd, one per connection), Paho's
 * thread and the live fan-out thread do the work; PostgreSQL or the broker
 * being away makes answers 503, it never ends the process. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clocks.h"
#include "log.h"
#include "version.h"
#include "web.h"

#ifndef CORDON_VERSION
#define CORDON_VERSION "0"
#endif

#define PURGE_EVERY_MS 60000
#define VERIFY_CONCURRENCY 2

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: cordon-web [-c FILE] [--check-config]\n"
		"  -c, --config FILE   configuration file (default /etc/cordon/cordond.conf)\n"
		"  -n, --check-config  validate FILE, print cordon-web's [web], exit\n"
		"  -V, --version       print the version and those of the libraries\n"
		"  -h, --help          this text\n");
}

static void
status(struct web *w, bool *was_ok)
{
	bool db = web_db_is_up(w->db), mq = web_live_is_connected(w->live);
	bool ok = db && mq;

	if (ok == *was_ok)
		return;
	*was_ok = ok;
	sd_notifyf(0, "STATUS=%s",
		   ok	       ? "serving; PostgreSQL and the broker connected" :
			   !db ? "PostgreSQL unreachable: answering 503" :
				 "broker not connected: open alerts from PostgreSQL");
}

static void
purge(struct web *w)
{
	PGconn *conn;

	if (web_db_acquire(w->db, 1000, &conn) < 0)
		return;
	if (web_sessions_purge(conn, &w->cfg) < 0)
		log_warn("cannot purge expired sessions; trying again in %d s",
			 PURGE_EVERY_MS / 1000);
	web_db_release(w->db, conn);
}

static void
reload(const char *path)
{
	struct web_config next;

	if (web_config_init(&next) < 0)
		return;
	if (web_config_load(&next, path, stderr) < 0) {
		log_err("SIGHUP: %s has errors (above); the configuration in use stays", path);
		web_config_finish(&next);
		return;
	}
	/* Read by the HTTP threads without a lock: only the log level changes. */
	log_set_level((enum log_level)next.base.log_level);
	log_notice("SIGHUP: log level %s; the other keys need a restart",
		   log_level_name((enum log_level)next.base.log_level));
	web_config_finish(&next);
}

static int
run(struct web *w, const char *path)
{
	sigset_t mask;
	int sfd;
	int64_t next_purge = 0, next_dog = 0;
	bool ok = false;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		fatal("signalfd: %s", strerror(errno));
	if (web_auth_init(VERIFY_CONCURRENCY) < 0)
		fatal("libsodium: cannot start");
	if (web_db_create(w->cfg.base.pg_conninfo, (int)w->cfg.db_pool, &w->db) < 0)
		fatal("out of memory");
	if (web_live_start(&w->cfg, w->db, &w->live) < 0)
		fatal("cannot start the MQTT client");
	if (web_http_start(w) < 0)
		fatal("cannot serve HTTP on %s", w->cfg.listen);
	log_notice("cordon-web %s listening on %s (assets %s)", CORDON_VERSION, w->cfg.listen,
		   w->cfg.assets_dir);
	sd_notify(0, "READY=1\nSTATUS=listening");
	for (;;) {
		struct pollfd pfd = { sfd, POLLIN, 0 };
		int64_t now = clocks_mono_ms();

		if (now >= next_purge) {
			purge(w);
			next_purge = now + PURGE_EVERY_MS;
		}
		status(w, &ok);
		web_live_tick(w->live, now);
		if (now >= next_dog) {
			sd_notify(0, "WATCHDOG=1");
			next_dog = now + 5000;
		}
		if (poll(&pfd, 1, 1000) > 0 && (pfd.revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo == SIGPIPE)
				continue;
			if (si.ssi_signo == SIGHUP) {
				sd_notify(0, "RELOADING=1");
				reload(path);
				sd_notify(0, "READY=1");
				continue;
			}
			break;
		}
	}
	sd_notify(0, "STOPPING=1");
	log_info("stopping");
	web_live_refuse_clients(w->live);
	web_http_stop(w);
	web_live_stop(w->live);
	web_db_destroy(w->db);
	web_auth_finish();
	close(sfd);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct web w;
	const char *path = "/etc/cordon/cordond.conf";
	int check = 0, c, rc;

	while ((c = getopt_long(argc, argv, "c:nVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': version_print(stdout, "cordon-web"); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init();
	if ((rc = web_config_init(&w.cfg)) < 0)
		fatal("%s", config_init_strerror(rc));
	rc = web_config_load(&w.cfg, path, stderr);
	if (check) {
		if (rc == 0)
			web_config_print(&w.cfg, stdout);
		web_config_finish(&w.cfg);
		return rc == 0 ? 0 : 1;
	}
	if (rc < 0)
		fatal("invalid configuration in %s", path);
	log_set_level((enum log_level)w.cfg.base.log_level);
	rc = run(&w, path);
	web_config_finish(&w.cfg);
	return rc;
}
