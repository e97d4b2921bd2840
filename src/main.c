/* main.c - cordond: parses argv and hands over to the daemon loop. */
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "version.h"

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: cordond [-c FILE] [--check-config]\n"
		"  -c, --config FILE   configuration file (default /etc/cordon/cordond.conf)\n"
		"  -n, --check-config  validate FILE, print the effective configuration, exit\n"
		"  -V, --version       print the version and those of the libraries\n"
		"  -h, --help          this text\n");
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
	const char *path = "/etc/cordon/cordond.conf";
	struct config cfg;
	int check = 0, c, rc;

	while ((c = getopt_long(argc, argv, "c:nVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': version_print(stdout, "cordond"); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init();
	if ((rc = config_init(&cfg)) < 0)
		fatal("%s", config_init_strerror(rc));
	rc = config_load(&cfg, path, stderr);
	if (check) {
		if (rc == 0)
			config_print(&cfg, stdout);
		config_finish(&cfg);
		return rc == 0 ? 0 : 1;
	}
	if (rc < 0) {
		config_finish(&cfg);
		fatal("invalid configuration in %s", path);
	}
	/* The unit runs cordond as the user cordon; the spool's files made by a
	 * cordond started by hand as root would be root's, and the unit's
	 * cordond could not open them (docs/operations.md, "Install and first
	 * start"). Tests and containers run as root on purpose: a warning. */
	if (geteuid() == 0)
		log_warn("running as root: the files it makes in %s belong to root, and"
			 " cordond.service (User=cordon) cannot open them; run it as the user"
			 " cordon (runuser -u cordon -- cordond ...)",
			 cfg.spool_dir);
	rc = daemon_run(&cfg, path);
	config_finish(&cfg);
	return rc;
}
