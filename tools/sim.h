/* sim.h - what the parts of cordon-sim share: the PRNG, times, the
 * reference compound's register and the MQTT publisher. Private to tools/
 * (not a core module). */
#ifndef CORDON_SIM_H
#define CORDON_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tool.h"

/* Exit codes: 0 done, 1 failed, 2 usage error. */
#define SIM_FAILED 1
#define SIM_USAGE 2

#define SIM_ID_MAX 65	/* ids are [A-Za-z0-9_-]{1,64} (SPEC 2), + NUL */
#define SIM_CARDS_MAX 4 /* cards kept per household */
#define SIM_N_GATES 16
#define SIM_N_ZONES 12
#define SIM_N_ISOLATED 40
#define SIM_N_VOLUNTEERS 24 /* vol-01 .. vol-24, in 4 teams */
#define SIM_OPEN_GATE "G01"
#define SIM_FORCED_GATE "G07"

/* ---------------------------------------------------------------- numbers */

/* xoshiro256** seeded through splitmix64 from (seed, stream): independent
 * streams for the register, the isolation orders and the messages. */
struct rng {
	uint64_t s[4];
	double spare;
	bool has_spare;
};

void rng_seed(struct rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(struct rng *r);
double rng_real(struct rng *r);		       /* [0, 1) */
uint64_t rng_below(struct rng *r, uint64_t n); /* [0, n), n > 0 */
int rng_range(struct rng *r, int lo, int hi);  /* [lo, hi] */
double rng_uniform(struct rng *r, double a, double b);
double rng_gauss(struct rng *r, double mu, double sigma);
double rng_expo(struct rng *r, double lambda);
void rng_shuffle(struct rng *r, int *a, size_t n);

/* "60s", "5m", "2h", "1d", "250ms" (config_parse_duration) or plain
 * seconds -> seconds. 0 or -EINVAL. */
int sim_parse_duration(const char *s, double *ret_s) __attribute__((warn_unused_result));
/* Parses a whole decimal integer in [lo, hi]. 0 or -EINVAL. */
int sim_parse_int(const char *s, long long lo, long long hi, long long *ret)
	__attribute__((warn_unused_result));
int sim_parse_real(const char *s, double lo, double hi, double *ret)
	__attribute__((warn_unused_result));

/* ---------------------------------------------------------------- faults */

/* The injected faults, in `--faults` order; 1 << enum sim_fault in a mask.
 * F_SECOND_CARD is the register's (`register --faults`), the others run's. */
enum sim_fault {
	F_FEVER,
	F_SEALED,
	F_BREACH,
	F_MALFORMED,
	F_UNKNOWN_CARD,
	F_SKEW,
	F_EXIT_QUOTA,
	F_HOTLINE,
	F_MISSED_CHECK,
	F_SILENT,
	F_UNDELIVERED,
	F_MISSED_CALL,
	F_UNCOLLECTED,
	F_SECOND_CARD,
	SIM_N_FAULTS
};
#define SIM_ALL_FAULTS ((1u << SIM_N_FAULTS) - 1)
extern const char *const sim_fault_names[SIM_N_FAULTS];

/* "all", "none" or a comma list of fault names -> a mask of 1 << enum
 * sim_fault. 0, or -1 after printing the unknown name. */
int sim_parse_faults(const char *arg, unsigned *ret) __attribute__((warn_unused_result));

/* ---------------------------------------------------------------- time */

double sim_mono(void); /* CLOCK_MONOTONIC, seconds */
/* Formats a wall-clock time in the compound's zone (UTC+08:00, Asia/Shanghai
 * has no DST): "2020-02-16T18:32:00.123+08:00", or without the milliseconds. */
void sim_iso_time(char *buf, size_t len, int64_t real_us, bool ms);

/* SIGINT and SIGTERM are blocked in every thread (Paho's inherit the mask);
 * the main thread takes them with sim_sleep(). */
void sim_signals_block(void);
/* Sleeps up to `seconds`; returns true when SIGINT or SIGTERM arrived
 * (now or earlier). seconds <= 0 only polls. */
bool sim_sleep(double seconds);

/* ---------------------------------------------------------------- register */

struct household {
	char id[SIM_ID_MAX];
	char card[SIM_CARDS_MAX][SIM_ID_MAX];
	int ncards;
	int size;
};

struct reg {
	struct household *hh;
	size_t n;
	int buildings;
	long residents;
	long cards;
	/* indices into hh; [0] missed_check, [1] breach, [2] hotline, [3] missed_call,
	 * [4] uncollected */
	int isolated[SIM_N_ISOLATED];
	int second_card; /* index into hh of the household the second_card fault gives
			  * two ordinary cards (reg_second_card), or -1 */
};

/* Generates the reference compound from the seed (52 buildings, 3,427
 * households, 10,803 residents). 0 or -ENOMEM. */
int reg_generate(struct reg *reg, uint64_t seed) __attribute__((warn_unused_result));
/* Reads a household CSV (header household,...,size,...,cards). 0 or -1
 * after printing why. */
int reg_read(struct reg *reg, const char *path) __attribute__((warn_unused_result));
/* Picks the isolated households, deterministic from the seed. 0 or -1. */
int reg_isolate(struct reg *reg, uint64_t seed) __attribute__((warn_unused_result));
/* Picks reg->second_card, deterministic from the seed and the register: a
 * household that is not isolated and has two cards or more (call after
 * reg_isolate()); -1 when there is none. */
void reg_second_card(struct reg *reg, uint64_t seed);
/* A volunteer's id for k in [0, SIM_N_VOLUNTEERS): "vol-01" .. "vol-24". */
void reg_volunteer(char *buf, size_t len, int k);
void reg_finish(struct reg *reg);

/* ---------------------------------------------------------------- MQTT */

/* What a publish counts for once the broker acknowledged it: a kind (0..15),
 * the rows it makes (0..255) and a label (0 none, 1..15). */
#define PUB_TAG(kind, rows, label) \
	((uint32_t)(kind) | (uint32_t)(rows) << 4 | (uint32_t)(label) << 12)
#define PUB_KINDS 16
#define PUB_LABELS 16

struct pub;

/* The broker user of run and load: -u/--username and --password-file
 * (its first line: config_read_secret). NULL: none, as before. */
struct pub_login {
	const char *username;
	const char *password_file;
};
#define PUB_LOGIN_SYNOPSIS "[-u USER [--password-file FILE]]"
#define PUB_OPT_PASSWORD_FILE 1001 /* getopt_long's value of --password-file */
/* Checks them (--password-file only with -u); 0, or tool_usage()'s 2. */
int pub_login_check(const struct pub_login *login, const char *synopsis);

/* Connects to uri (tcp://HOST:PORT) with a clean session, as login's user
 * with its password when given; at most `inflight` messages are
 * unacknowledged at a time. 0 or -1 after printing why. */
int pub_create(const char *uri, const struct pub_login *login, const char *client_prefix,
	       int inflight, struct pub **ret_pub) __attribute__((warn_unused_result));
/* Waits while the in-flight window is full; false when the connection is
 * lost (printed). */
bool pub_ready(struct pub *p);
/* Publishes; waits while the in-flight window is full. Returns 0, or -1
 * when the connection is lost or Paho refuses (printed). */
int pub_send(struct pub *p, const char *topic, const void *payload, size_t len, int qos,
	     uint32_t tag) __attribute__((warn_unused_result));
/* Waits up to timeout seconds for every sent message to be acknowledged;
 * returns true when all were. */
bool pub_drain(struct pub *p, double timeout);
/* Counters: sent, acknowledged, failed; per-kind messages and rows, per label. */
struct pub_counts {
	uint64_t sent, acked, failed;
	uint64_t msgs[PUB_KINDS], rows[PUB_KINDS], labels[PUB_LABELS];
};
void pub_counts(struct pub *p, struct pub_counts *ret);
void pub_destroy(struct pub *p);

/* ---------------------------------------------------------------- commands */

int sim_register(int argc, char **argv);
int sim_run(int argc, char **argv);
int sim_load(int argc, char **argv);

#endif
