/* sim_load.c - `cordon-sim load`: gate events at a fixed rate, for
 * benchmarks.
 *
 * Message i (from 0) is due at start + i / rate: the schedule is absolute,
 * so a late wake-up is caught up at once and the rate does not drift. With
 * --rate 0 the in-flight window alone paces the publisher. Payloads are
 * built into one stack buffer; the topics are made once; nothing is
 * allocated per message here (Paho copies each message it queues).
 *
 * --sites N spreads the messages over N sites, "<site>-<k>" (k from 0, as
 * many digits as N - 1 has): message seq goes to site seq % N and gate
 * (seq / N) % gates, so every site gets its share and each site's gates
 * take turns; its topic is built per message. Without it (N = 1) the site
 * is --site itself and gate seq % gates, as before.
 *
 * Ids: "L-<run>-<seq>", <run> 8 hex digits different at every run (so a
 * second run against the same database is not taken for duplicates);
 * --stamp appends "-<usec>", the CLOCK_REALTIME time in microseconds just
 * before the message was handed to Paho. A fever alert's event_id is
 * "<site>/<gate>/<id>" of its first triggering event (docs/alerts.md), so a
 * latency benchmark reads the stamp back from the last '-' of event_id. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clocks.h"
#include "sim.h"
#include "topics.h"

#define MAX_GATES 99

enum format { FMT_CANONICAL, FMT_MIX };

struct load {
	const char *site;
	double rate, duration, fever_rate;
	long long count, fever_every, seed, sites;
	int gates, qos, inflight, site_digits;
	bool stamp;
	enum format format;
	char run[12];
	char topic[MAX_GATES][128];
	/* the device time's seconds, formatted once per second */
	int64_t ts_sec;
	char ts_prefix[24];
};

/* "2020-02-16T18:32:00.123+08:00" for now_us, reformatting the date and
 * time only when the second changed. */
static void
device_time(struct load *l, int64_t now_us, char *buf, size_t len, bool ms)
{
	int64_t sec = now_us / 1000000;

	if (sec != l->ts_sec) {
		char full[40];

		sim_iso_time(full, sizeof(full), sec * 1000000, false);
		memcpy(l->ts_prefix, full, 19); /* YYYY-MM-DDTHH:MM:SS */
		l->ts_prefix[19] = '\0';
		l->ts_sec = sec;
	}
	if (ms)
		snprintf(buf, len, "%s.%03d+08:00", l->ts_prefix, (int)(now_us % 1000000 / 1000));
	else
		snprintf(buf, len, "%s+08:00", l->ts_prefix);
}

static double
temperature(struct rng *r, double fever_rate)
{
	if (fever_rate > 0 && rng_real(r) < fever_rate)
		return floor(rng_uniform(r, 37.4, 39.2) * 10 + 0.5) / 10;
	for (;;) {
		double t = rng_gauss(r, 36.5, 0.3);

		if (t < 37.2)
			return floor((t < 35.5 ? 35.5 : t) * 10 + 0.5) / 10;
	}
}

/* Builds message seq (from 1): sets *ret_gate and returns the payload length. */
static size_t
build(struct load *l, struct rng *r, uint64_t seq, char *buf, size_t len, int *ret_gate)
{
	bool fever = l->fever_every && seq % (uint64_t)l->fever_every == 0;
	double temp = fever ? 38.9 : temperature(r, l->fever_rate);
	double fmt = l->format == FMT_MIX && !fever ? rng_real(r) : 1.0;
	unsigned card = 1 + (unsigned)rng_below(r, 99999);
	bool in = rng_real(r) < 0.5, mask = rng_real(r) < 0.97;
	int64_t now = clocks_wall_us();
	char id[64], ts[40];
	int n;

	*ret_gate = (int)(seq / (uint64_t)l->sites % (uint64_t)l->gates);
	if (l->stamp)
		snprintf(id, sizeof(id), "L-%s-%llu-%lld", l->run, (unsigned long long)seq,
			 (long long)now);
	else
		snprintf(id, sizeof(id), "L-%s-%llu", l->run, (unsigned long long)seq);
	if (fmt < 0.10) {
		device_time(l, now, ts, sizeof(ts), false);
		n = snprintf(
			buf, len,
			"{\"ipAddress\":\"10.6.1.21\",\"portNo\":80,\"protocol\":\"HTTP\","
			"\"dateTime\":\"%s\",\"eventType\":\"AccessControllerEvent\","
			"\"eventState\":\"active\",\"AccessControllerEvent\":{"
			"\"majorEventType\":5,\"subEventType\":75,\"cardNo\":\"C-%05u\","
			"\"serialNo\":\"%s\",\"currentVerifyMode\":\"cardOrFace\",\"mask\":\"%s\","
			"\"currTemperature\":%.1f,\"thermometryUnit\":\"celsius\","
			"\"isAbnomalTemperature\":%s}}",
			ts, card, id, mask ? "yes" : "no", temp, temp >= 37.3 ? "true" : "false");
	} else if (fmt < 0.15) {
		/* WeCom reports have no record id: the daemon keys them by their
		 * hash, which the user id (made of the message id) keeps unique */
		n = snprintf(buf, len,
			     "{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":["
			     "{\"userid\":\"u-%s\",\"temperature\":\"%.1f\",\"timestamp\":%lld,"
			     "\"status\":%d}]}",
			     id, temp, (long long)(now / 1000000), temp >= 37.3);
	} else {
		device_time(l, now, ts, sizeof(ts), true);
		/* a --fever-every reading carries no card: each raises an alert of its
		 * own (subject gate:<gate>:<hash>) whose event_id names this message */
		if (fever)
			n = snprintf(buf, len,
				     "{\"id\":\"%s\",\"ts\":\"%s\",\"direction\":\"in\","
				     "\"temp_c\":38.9,\"mask\":true}",
				     id, ts);
		else
			n = snprintf(buf, len,
				     "{\"id\":\"%s\",\"ts\":\"%s\",\"card\":\"C-%05u\","
				     "\"direction\":\"%s\",\"temp_c\":%.1f,\"mask\":%s}",
				     id, ts, card, in ? "in" : "out", temp,
				     mask ? "true" : "false");
	}
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static const char synopsis[] =
	"load --uri tcp://HOST:PORT --site S [--rate N|0] [--count N] [--duration D]\n"
	"      [--sites N] [--gates N] [--qos 0|1] [--inflight N] [--fever-rate R]\n"
	"      [--fever-every N] [--stamp] [--seed N] [--format canonical|mix]\n"
	"      " PUB_LOGIN_SYNOPSIS;

int
sim_load(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'U' },
		{ "username", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, PUB_OPT_PASSWORD_FILE },
		{ "site", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sites", required_argument, NULL, 'N' },
		{ "gates", required_argument, NULL, 'g' },
		{ "qos", required_argument, NULL, 'q' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "fever-rate", required_argument, NULL, 'F' },
		{ "fever-every", required_argument, NULL, 'E' },
		{ "stamp", no_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'S' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct load *l;
	const char *uri = NULL;
	struct pub_login login = { NULL, NULL };
	struct pub *p = NULL;
	struct pub_counts c;
	struct rng r;
	char payload[1024], topic[128];
	double start, elapsed;
	long long v;
	uint64_t seq, mix;
	int ch, rc = SIM_FAILED;
	bool all_acked;

	l = calloc(1, sizeof(*l));
	if (!l) {
		tool_err("out of memory");
		return SIM_FAILED;
	}
	l->rate = 1000;
	l->gates = 16;
	l->qos = 1;
	l->inflight = 1000;
	l->seed = 1;
	l->sites = 1;
	l->ts_sec = -1;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":hu:", opts, NULL)) != -1) {
		switch (ch) {
		case 'U': uri = optarg; break;
		case 'u': login.username = optarg; break;
		case PUB_OPT_PASSWORD_FILE: login.password_file = optarg; break;
		case 's': l->site = optarg; break;
		case 't': l->stamp = true; break;
		case 'r':
			if (sim_parse_real(optarg, 0, 1e7, &l->rate) < 0) {
				rc = tool_usage(synopsis,
						"--rate: messages per second (0 = as fast as "
						"possible): '%s'",
						optarg);
				goto out;
			}
			break;
		case 'n':
		case 'E':
			if (sim_parse_int(optarg, 0, INT64_MAX, &v) < 0) {
				rc = tool_usage(synopsis, "%s: not a count: '%s'", argv[optind - 2],
						optarg);
				goto out;
			}
			*(ch == 'n' ? &l->count : &l->fever_every) = v;
			break;
		case 'd':
			if (sim_parse_duration(optarg, &l->duration) < 0) {
				rc = tool_usage(synopsis, "--duration: not a duration: '%s'",
						optarg);
				goto out;
			}
			break;
		case 'g':
		case 'q':
		case 'i':
			if (sim_parse_int(optarg, ch == 'q' ? 0 : 1,
					  ch == 'g'	    ? MAX_GATES :
						  ch == 'q' ? 1 :
							      65535,
					  &v) < 0) {
				rc = tool_usage(synopsis,
						"%s: out of range (--gates 1..%d, --qos 0|1, "
						"--inflight 1..65535): '%s'",
						argv[optind - 2], MAX_GATES, optarg);
				goto out;
			}
			*(ch == 'g' ? &l->gates : ch == 'q' ? &l->qos : &l->inflight) = (int)v;
			break;
		case 'N':
			if (sim_parse_int(optarg, 1, 100000000, &l->sites) < 0) {
				rc = tool_usage(synopsis, "--sites: 1..100000000: '%s'", optarg);
				goto out;
			}
			break;
		case 'F':
			if (sim_parse_real(optarg, 0, 1, &l->fever_rate) < 0) {
				rc = tool_usage(synopsis, "--fever-rate: a share in [0, 1]: '%s'",
						optarg);
				goto out;
			}
			break;
		case 'S':
			if (sim_parse_int(optarg, 0, INT64_MAX, &l->seed) < 0) {
				rc = tool_usage(synopsis, "--seed: not a number: '%s'", optarg);
				goto out;
			}
			break;
		case 'f':
			if (strcmp(optarg, "canonical") == 0) {
				l->format = FMT_CANONICAL;
			} else if (strcmp(optarg, "mix") == 0) {
				l->format = FMT_MIX;
			} else {
				rc = tool_usage(synopsis, "--format: canonical or mix: '%s'",
						optarg);
				goto out;
			}
			break;
		case 'h':
			printf("usage: cordon-sim %s\n", synopsis);
			rc = 0;
			goto out;
		case ':': rc = tool_usage(synopsis, "%s needs a value", argv[optind - 1]); goto out;
		default:
			rc = tool_usage(synopsis, "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		rc = tool_usage(synopsis, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!uri || !l->site) {
		rc = tool_usage(synopsis, "--uri and --site are required");
		goto out;
	}
	if (pub_login_check(&login, synopsis) != 0) {
		rc = SIM_USAGE;
		goto out;
	}
	if (!tool_valid_id(l->site)) {
		rc = tool_usage(synopsis, "--site: not an id ([A-Za-z0-9_-]{1,64}): '%s'", l->site);
		goto out;
	}
	for (long long k = l->sites - 1; k > 0; k /= 10) /* 0 digits: one site, unnamed */
		l->site_digits++;
	if (l->sites > 1 && strlen(l->site) + 1 + (size_t)l->site_digits > 64) {
		rc = tool_usage(synopsis, "--site: too long for --sites %lld (ids are 64 at most)",
				l->sites);
		goto out;
	}
	for (int g = 0; g < l->gates; g++) {
		char gate[16];

		snprintf(gate, sizeof(gate), "G%02d", g + 1);
		topics_build(l->topic[g], sizeof(l->topic[g]), "cordon", TOPIC_GATE_EVENT, l->site,
			     gate);
	}
	mix = (uint64_t)clocks_wall_us() ^ ((uint64_t)getpid() << 32);
	{
		struct rng id_rng;

		rng_seed(&id_rng, mix, 7);
		snprintf(l->run, sizeof(l->run), "%08x", (unsigned)(rng_next(&id_rng) >> 32));
	}
	rng_seed(&r, (uint64_t)l->seed, 3);

	sim_signals_block();
	if (pub_create(uri, &login, "cordon-load", l->inflight, &p) < 0)
		goto out;
	if (l->rate > 0)
		printf("cordon-sim load: site %s, run %s, %g msg/s, QoS %d, %d in flight, %d gates, "
		       "%lld sites\n",
		       l->site, l->run, l->rate, l->qos, l->inflight, l->gates, l->sites);
	else
		printf("cordon-sim load: site %s, run %s, as fast as %d in flight allow, QoS %d, "
		       "%d gates, %lld sites\n",
		       l->site, l->run, l->inflight, l->qos, l->gates, l->sites);
	fflush(stdout);

	start = sim_mono();
	for (seq = 1; l->count == 0 || seq <= (uint64_t)l->count; seq++) {
		const char *t;
		size_t len;
		int gate;

		if (l->rate > 0) {
			double due = start + (double)(seq - 1) / l->rate, now = sim_mono();

			if (l->duration > 0 && due - start >= l->duration)
				break;
			if (now < due ? sim_sleep(due - now) : (seq & 1023) == 0 && sim_sleep(0))
				break;
		} else if ((seq & 1023) == 0) {
			if (sim_sleep(0) || (l->duration > 0 && sim_mono() - start >= l->duration))
				break;
		}
		if (!pub_ready(p))
			break;
		len = build(l, &r, seq, payload, sizeof(payload), &gate);
		t = l->topic[gate];
		if (l->sites > 1) {
			char site[80], gate_name[16];

			snprintf(site, sizeof(site), "%s-%0*llu", l->site, l->site_digits,
				 (unsigned long long)(seq % (uint64_t)l->sites));
			snprintf(gate_name, sizeof(gate_name), "G%02d", gate + 1);
			topics_build(topic, sizeof(topic), "cordon", TOPIC_GATE_EVENT, site,
				     gate_name);
			t = topic;
		}
		if (pub_send(p, t, payload, len, l->qos, 0) < 0)
			break;
	}
	all_acked = pub_drain(p, 60);
	elapsed = sim_mono() - start;
	pub_counts(p, &c);
	if (!all_acked || c.failed)
		tool_err("only %llu of %llu messages acknowledged", (unsigned long long)c.acked,
			 (unsigned long long)c.sent);
	printf("published      %llu\n"
	       "acknowledged   %llu\n"
	       "elapsed_s      %.3f\n"
	       "rate_msg_s     %.1f\n",
	       (unsigned long long)c.sent, (unsigned long long)c.acked, elapsed,
	       elapsed > 0 ? (double)c.acked / elapsed : 0.0);
	rc = all_acked && !c.failed ? 0 : SIM_FAILED;
out:
	pub_destroy(p);
	free(l);
	return rc;
}
