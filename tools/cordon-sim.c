/* cordon-sim.c - the simulator of the reference compound (SPEC): argv,
 * dispatch, and what its commands share (PRNG, durations, times, signals).
 *
 *   register   the household CSV and the cordonctl setup (sim_register.c)
 *   run        a simulated day compressed into --day, with faults (sim_run.c)
 *   load       gate events at a fixed rate, for benchmarks (sim_load.c)
 *
 * MQTT publishing is in sim_mqtt.c. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "config.h"
#include "sim.h"
#include "version.h"

const char tool_name[] = "cordon-sim";
const char tool_synopsis_prefix[] = "cordon-sim";

static void
usage(FILE *out)
{
	fputs("usage: cordon-sim COMMAND [OPTIONS]\n"
	      "\n"
	      "The reference compound (SPEC): 52 buildings, 3,427 households, 10,803 residents,\n"
	      "16 gates G01..G16 of which only G01 is open, 12 disinfection zones Z01..Z12, one\n"
	      "hotline, 40 households in home isolation.\n"
	      "\n"
	      "  register --site S --out FILE.csv [--seed N] [--script FILE.sh] [--sql FILE.sql]\n"
	      "      [--faults all|none|LIST]\n"
	      "      writes the household CSV for `cordonctl import households`, and prints (or\n"
	      "      writes with --script) the cordonctl commands for gates, zones and isolation\n"
	      "      orders; --sql writes the SQL that marks every second card a carer's (extra,\n"
	      "      reason 'carer'), registers the volunteers vol-01..vol-24, and backdates the\n"
	      "      isolation order of the household whose checks the missed_check fault skips.\n"
	      "\n"
	      "  run --uri tcp://HOST:PORT --site S [--duration 60s] [--day 120s] [--seed N]\n"
	      "      [--register FILE.csv] [--faults all|none|LIST] [--fever-rate R]\n"
	      "      [--passes-per-day N] [--calls-per-day N] [--silent-at 12s] [--silent-for 25s]\n"
	      "      [--summary FILE] [-u USER [--password-file FILE]]\n"
	      "      publishes a simulated day compressed into --day, at QoS 1, with real device\n"
	      "      times: gate passes at G01 (canonical, Hikvision and WeCom payloads),\n"
	      "      heartbeats of every gate, disinfection rounds, hotline calls, isolation checks\n"
	      "      twice a simulated day, the daily welfare call to every isolated household,\n"
	      "      the needs ledger (open, assign to a volunteer, deliver), drop-offs placed\n"
	      "      and collected; plus the injected faults. Without --duration it runs until\n"
	      "      Ctrl-C. Prints what the broker acknowledged, by kind.\n"
	      "\n"
	      "  load --uri tcp://HOST:PORT --site S [--rate N|0] [--count N] [--duration D]\n"
	      "      [--sites N] [--gates N] [--qos 0|1] [--inflight N] [--fever-rate R]\n"
	      "      [--fever-every N] [--stamp] [--seed N] [--format canonical|mix]\n"
	      "      [-u USER [--password-file FILE]]\n"
	      "      publishes gate events at N messages/s (default 1000; 0 = as fast as the\n"
	      "      in-flight window allows) until --count, --duration or Ctrl-C, and prints\n"
	      "      the messages published and acknowledged, the elapsed time and the rate;\n"
	      "      --sites N spreads them over N sites S-<k>, k from 0.\n"
	      "\n"
	      "run and load connect without a user name, or with:\n"
	      "  -u, --username USER     the broker user (config/mosquitto.acl: gate-S-G may\n"
	      "                          publish only its own gate's topics, so load --gates 1\n"
	      "                          as gate-S-G01; run publishes on every inbound topic\n"
	      "                          of the site and needs a user that may)\n"
	      "  --password-file FILE    the file whose first line is USER's password (never a\n"
	      "                          password on the command line)\n"
	      "\n"
	      "Faults (--faults all, none, or a comma list of; run injects all but\n"
	      "second_card, register only second_card):\n"
	      "  fever         a critical fever reading at G01 (besides --fever-rate)\n"
	      "  sealed        the sealed gate G07 reports status \"forced\"\n"
	      "  breach        a card of an isolated household goes out at G01\n"
	      "  malformed     malformed payloads (not JSON, no temperature, no time, bad state)\n"
	      "  unknown_card  a pass with a card that is not registered\n"
	      "  skew          a terminal whose clock is 3 h behind sends a febrile reading\n"
	      "  exit_quota    a household goes out twice in a row\n"
	      "  hotline       an urgent medical call that is never resolved\n"
	      "  missed_check  one isolated household never sends its health check\n"
	      "  silent        gate G01 goes silent (no pass, no heartbeat) for --silent-for\n"
	      "  undelivered   a need assigned and never delivered, past its due\n"
	      "  missed_call   one isolated household never gets its daily welfare call\n"
	      "  uncollected   a drop-off for an isolated household never collected\n"
	      "  second_card   (register) one household keeps a second ordinary card\n"
	      "\n"
	      "Deterministic: the same --seed gives the same register and the same messages\n"
	      "(only the device times follow the wall clock).\n"
	      "exit status: 0 done, 1 failed, 2 usage error\n",
	      out);
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	r->has_spare = false;
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
rng_real(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* Lemire's nearly divisionless bounded integer, unbiased. */
uint64_t
rng_below(struct rng *r, uint64_t n)
{
	unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
	uint64_t low = (uint64_t)m;

	if (low < n) {
		/* 2^64 mod n, in 64 bits (-n is 2^64 - n) */
		// cppcheck-suppress oppositeExpression
		uint64_t t = -n % n;

		while (low < t) {
			m = (unsigned __int128)rng_next(r) * n;
			low = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

int
rng_range(struct rng *r, int lo, int hi)
{
	return lo + (int)rng_below(r, (uint64_t)(hi - lo) + 1);
}

double
rng_uniform(struct rng *r, double a, double b)
{
	return a + (b - a) * rng_real(r);
}

/* Box-Muller; the second value is kept for the next call. */
double
rng_gauss(struct rng *r, double mu, double sigma)
{
	double u, v, m;

	if (r->has_spare) {
		r->has_spare = false;
		return mu + sigma * r->spare;
	}
	u = 1.0 - rng_real(r); /* (0, 1] */
	v = rng_real(r);
	m = sqrt(-2.0 * log(u));
	r->spare = m * sin(2.0 * M_PI * v);
	r->has_spare = true;
	return mu + sigma * m * cos(2.0 * M_PI * v);
}

double
rng_expo(struct rng *r, double lambda)
{
	return -log(1.0 - rng_real(r)) / lambda;
}

void
rng_shuffle(struct rng *r, int *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		int t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}

/* ---------------------------------------------------------------- faults */

const char *const sim_fault_names[SIM_N_FAULTS] = {
	"fever",       "sealed",      "breach",	     "malformed",    "unknown_card",
	"skew",	       "exit_quota",  "hotline",     "missed_check", "silent",
	"undelivered", "missed_call", "uncollected", "second_card",
};

int
sim_parse_faults(const char *arg, unsigned *ret)
{
	char buf[256], *tok, *save = NULL;
	unsigned f = 0;

	if (strcmp(arg, "all") == 0) {
		*ret = SIM_ALL_FAULTS;
		return 0;
	}
	if (strcmp(arg, "none") == 0) {
		*ret = 0;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < SIM_N_FAULTS && strcmp(tok, sim_fault_names[i]) != 0; i++)
			;
		if (i == SIM_N_FAULTS) {
			char known[400] = "";

			for (int k = 0; k < SIM_N_FAULTS; k++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known),
					 "%s%s", k ? ", " : "", sim_fault_names[k]);
			tool_err("unknown fault '%s' (known: %s)", tok, known);
			return -1;
		}
		f |= 1u << i;
	}
	*ret = f;
	return 0;
}

/* ---------------------------------------------------------------- arguments */

int
sim_parse_duration(const char *s, double *ret_s)
{
	int64_t ms;
	char *end;
	double v;

	if (config_parse_duration(s, &ms) == 0) {
		if (ms < 0)
			return -EINVAL;
		*ret_s = (double)ms / 1000.0;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*ret_s = v;
	return 0;
}

int
sim_parse_int(const char *s, long long lo, long long hi, long long *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

int
sim_parse_real(const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ---------------------------------------------------------------- time */

double
sim_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
sim_iso_time(char *buf, size_t len, int64_t real_us, bool ms)
{
	int64_t local_us = real_us + (int64_t)8 * 3600 * 1000000;
	time_t secs = (time_t)(local_us / 1000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	if (ms)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+08:00", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(local_us % 1000000 / 1000));
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d+08:00", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---------------------------------------------------------------- signals */

static void
on_signal(int sig)
{
	(void)sig; /* never runs: the signals are blocked and taken by sigtimedwait */
}

static bool stopped;

void
sim_signals_block(void)
{
	struct sigaction sa;
	sigset_t set;

	/* A handler, not SIG_IGN: a background job of a non-interactive shell
	 * inherits SIGINT ignored, and an ignored signal never becomes pending. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* Timer slack of 1 us (default 50 us): load paces to the microsecond. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
}

bool
sim_sleep(double seconds)
{
	struct timespec ts = { 0, 0 };
	sigset_t set;

	if (stopped)
		return true;
	if (seconds > 0) {
		ts.tv_sec = (time_t)seconds;
		ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_nsec = 999999999L;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM) {
			stopped = true;
			return true;
		}
		if (sig < 0 && errno == EINTR)
			continue; /* another signal (SIGCHLD, a debugger): the timeout is
					 * approximate then, the callers use absolute schedules */
		return false;
	}
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "register", sim_register },
		{ "run", sim_run },
		{ "load", sim_load },
	};

	if (argc < 2)
		return tool_usage(NULL, "no command given");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		version_print(stdout, "cordon-sim");
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	if (strcmp(argv[1], "watch") == 0)
		return tool_usage(NULL, "watch is gone: use `cordonctl alerts --follow`");
	return tool_usage(NULL, "unknown command '%s'", argv[1]);
}
