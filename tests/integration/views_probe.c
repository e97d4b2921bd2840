/* views_probe - runs one function of include/views.h against a database
 * and prints what it gives; tests/integration/test_views.py drives it.
 *
 *   views_probe CONNINFO household SITE HH LAST
 *   views_probe CONNINFO report SITE DATE           (views_report_json)
 *   views_probe CONNINFO report-csv SITE DATE
 *   views_probe CONNINFO gates SITES SITE
 *   views_probe CONNINFO zones SITES SITE DATE INTERVAL_S
 *   views_probe CONNINFO isolation SITES SITE
 *   views_probe CONNINFO needs SITES SITE STATUS
 *
 * "-" stands for NULL; SITES is a list separated by '\n' ("" an empty
 * list). The report uses fever 37.3, topic root "cordon", check interval
 * 43200 s and disinfection interval 14400 s; every function [site]
 * timezone $VIEWS_DEFAULT_TZ, else Asia/Shanghai. JSON on stdout, exit 0;
 * on an error "views_probe: E<name>: <message>" on stderr, exit 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views.h"

static const char *
arg(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

/* SITES as a NULL-terminated list (NULL for "-"); the strings point into
 * s, changed in place. */
static const char **
site_list(char *s)
{
	size_t n = 1;
	const char **list;

	if (strcmp(s, "-") == 0)
		return NULL;
	for (char *p = s; *p; p++)
		n += *p == '\n';
	list = calloc(n + 1, sizeof(*list));
	if (!list)
		exit(1);
	n = 0;
	if (*s) {
		for (char *p = strtok(s, "\n"); p; p = strtok(NULL, "\n"))
			list[n++] = p;
	}
	list[n] = NULL;
	return list;
}

static const char *
errname(int rc)
{
	switch (rc) {
	case -ENOENT: return "ENOENT";
	case -EINVAL: return "EINVAL";
	case -EIO: return "EIO";
	case -ENOMEM: return "ENOMEM";
	default: return "E?";
	}
}

int
main(int argc, char **argv)
{
	const char *tz = getenv("VIEWS_DEFAULT_TZ");
	struct views_report_args ra = {
		.fever = "37.3",
		.topic_root = "cordon",
		.check_interval_s = 43200,
		.disinfection_interval_s = 14400,
	};
	char errbuf[512] = "";
	const char **sites = NULL;
	json_t *out = NULL;
	PGconn *conn;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: views_probe CONNINFO VIEW ARGS...\n");
		return 2;
	}
	if (!tz || !*tz)
		tz = "Asia/Shanghai";
	ra.default_tz = tz;
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "views_probe: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
#define NEED(n)                                                                              \
	do {                                                                                 \
		if (argc != (n) + 3) {                                                       \
			fprintf(stderr, "views_probe: %s takes %d arguments\n", argv[2], n); \
			PQfinish(conn);                                                      \
			return 2;                                                            \
		}                                                                            \
	} while (0)
	if (strcmp(argv[2], "household") == 0) {
		NEED(3);
		rc = views_household_json(conn, argv[3], argv[4], tz, atoi(argv[5]), &out, errbuf,
					  sizeof(errbuf));
	} else if (strcmp(argv[2], "report") == 0 || strcmp(argv[2], "report-csv") == 0) {
		NEED(2);
		ra.site = arg(argv[3]);
		ra.date = arg(argv[4]);
		if (strcmp(argv[2], "report") == 0)
			rc = views_report_json(conn, &ra, &out, errbuf, sizeof(errbuf));
		else
			rc = views_report_csv(conn, &ra, stdout, errbuf, sizeof(errbuf));
	} else if (strcmp(argv[2], "gates") == 0) {
		NEED(2);
		sites = site_list(argv[3]);
		rc = views_gates_json(conn, sites, arg(argv[4]), tz, &out, errbuf, sizeof(errbuf));
	} else if (strcmp(argv[2], "zones") == 0) {
		NEED(4);
		sites = site_list(argv[3]);
		rc = views_zones_json(conn, sites, arg(argv[4]), arg(argv[5]), tz, atoll(argv[6]),
				      &out, errbuf, sizeof(errbuf));
	} else if (strcmp(argv[2], "isolation") == 0) {
		NEED(2);
		sites = site_list(argv[3]);
		rc = views_isolation_json(conn, sites, arg(argv[4]), tz, &out, errbuf,
					  sizeof(errbuf));
	} else if (strcmp(argv[2], "needs") == 0) {
		NEED(3);
		sites = site_list(argv[3]);
		rc = views_needs_json(conn, sites, arg(argv[4]), arg(argv[5]), &out, errbuf,
				      sizeof(errbuf));
	} else {
		fprintf(stderr, "views_probe: unknown view %s\n", argv[2]);
		PQfinish(conn);
		return 2;
	}
	free(sites);
	if (rc < 0) {
		fprintf(stderr, "views_probe: %s: %s\n", errname(rc), errbuf);
		PQfinish(conn);
		return 1;
	}
	if (out) {
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS);

		if (!s)
			rc = -ENOMEM;
		else
			printf("%s\n", s);
		free(s);
		json_decref(out);
	}
	/* Still usable: the view left the connection as it found it. */
	if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
		fprintf(stderr, "views_probe: the connection is not idle after the view\n");
		rc = -EIO;
	}
	PQfinish(conn);
	return rc < 0 ? 1 : 0;
}
