/* sim_register.c - the reference compound's register: generated from a
 * seed (the shape tools/gen_register.py writes: 52 buildings, 3,427
 * households BUILDING-UNIT-ROOM, 10,803 residents, 1-2 cards C-xxxxx per
 * household, 11-digit phones), read back from a CSV, the 40 isolated
 * households, the second_card fault's household, the volunteers, and
 * `cordon-sim register`.
 *
 * One card a household is the rule; a second card is the documented
 * exception, a carer's (children caring for a bedridden parent): the --sql
 * file marks every second card extra with reason 'carer' (the household
 * CSV has no column for it), but for the second_card fault's household. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim.h"

#define BUILDINGS 52
#define HOUSEHOLDS 3427
#define RESIDENTS 10803
#define CARD_IDS 99999 /* C-00001 .. C-99999 */

enum { STREAM_REGISTER = 1, STREAM_ISOLATION = 2, STREAM_SECOND_CARD = 3, STREAM_VOLUNTEERS = 4 };

/* Share of households by size (1 to 6 people), then nudged to the exact total. */
static const double size_weights[] = { 0.15, 0.25, 0.27, 0.19, 0.09, 0.05 };
static const char *const phone_prefixes[] = {
	"130", "131", "132", "135", "136", "137", "138", "139", "150", "151",
	"152", "158", "159", "180", "181", "186", "187", "188", "189",
};

/* The generated register keeps each row's other columns for the CSV. */
struct row {
	int building, unit;
	char room[16];
	char phone[12];
};

static int
weighted_size(struct rng *r)
{
	double total = 0, x;
	size_t n = sizeof(size_weights) / sizeof(size_weights[0]);

	for (size_t i = 0; i < n; i++)
		total += size_weights[i];
	x = rng_real(r) * total;
	for (size_t i = 0; i < n; i++) {
		if (x < size_weights[i])
			return (int)i + 1;
		x -= size_weights[i];
	}
	return (int)n;
}

/* Builds households, and rows (the CSV columns) when ret_rows is given. */
static int
generate(struct reg *reg, uint64_t seed, struct row **ret_rows)
{
	int counts[BUILDINGS], *cardnum = NULL;
	struct row *rows = NULL;
	struct rng r;
	size_t k = 0;
	long diff;
	int base = HOUSEHOLDS / BUILDINGS, extra = HOUSEHOLDS % BUILDINGS;

	memset(reg, 0, sizeof(*reg));
	reg->second_card = -1;
	rng_seed(&r, seed, STREAM_REGISTER);
	reg->hh = calloc(HOUSEHOLDS, sizeof(*reg->hh));
	rows = calloc(HOUSEHOLDS, sizeof(*rows));
	cardnum = malloc(CARD_IDS * sizeof(*cardnum));
	if (!reg->hh || !rows || !cardnum)
		goto nomem;
	reg->n = HOUSEHOLDS;
	reg->buildings = BUILDINGS;

	/* households per building, shuffled; filled floor by floor, 2-4 units,
	 * 2 rooms per unit and floor */
	for (int b = 0; b < BUILDINGS; b++)
		counts[b] = base + (b < extra);
	rng_shuffle(&r, counts, BUILDINGS);
	for (int b = 0; b < BUILDINGS; b++) {
		int units = rng_range(&r, 2, 4), made = 0;

		for (int floor = 1; made < counts[b]; floor++)
			for (int unit = 1; unit <= units && made < counts[b]; unit++)
				for (int rm = 1; rm <= 2 && made < counts[b]; rm++, made++, k++) {
					struct row *w = &rows[k];

					w->building = b + 1;
					w->unit = unit;
					snprintf(w->room, sizeof(w->room), "%d%02d", floor, rm);
					snprintf(reg->hh[k].id, sizeof(reg->hh[k].id), "%d-%d-%s",
						 b + 1, unit, w->room);
				}
	}

	/* sizes, nudged to exactly RESIDENTS (1..8 people) */
	diff = RESIDENTS;
	for (size_t i = 0; i < reg->n; i++) {
		reg->hh[i].size = weighted_size(&r);
		diff -= reg->hh[i].size;
	}
	while (diff) {
		struct household *h = &reg->hh[rng_below(&r, reg->n)];

		if (diff > 0 && h->size < 8) {
			h->size++;
			diff--;
		} else if (diff < 0 && h->size > 1) {
			h->size--;
			diff++;
		}
	}
	reg->residents = RESIDENTS;

	/* 2 * households distinct card numbers (a partial Fisher-Yates) */
	for (int i = 0; i < CARD_IDS; i++)
		cardnum[i] = i + 1;
	for (size_t i = 0; i < 2 * reg->n; i++) {
		size_t j = i + (size_t)rng_below(&r, CARD_IDS - i);
		int t = cardnum[i];

		cardnum[i] = cardnum[j];
		cardnum[j] = t;
	}
	k = 0;
	for (size_t i = 0; i < reg->n; i++) {
		struct household *h = &reg->hh[i];
		size_t np = sizeof(phone_prefixes) / sizeof(phone_prefixes[0]);
		const char *prefix = phone_prefixes[rng_below(&r, np)];

		snprintf(rows[i].phone, sizeof(rows[i].phone), "%s%08u", prefix,
			 (unsigned)rng_below(&r, 100000000));
		/* one card per household, a second for most households of 3 or more */
		h->ncards = h->size >= 3 && rng_real(&r) < 0.7 ? 2 : 1;
		for (int c = 0; c < h->ncards; c++)
			snprintf(h->card[c], sizeof(h->card[c]), "C-%05d", cardnum[k++]);
		reg->cards += h->ncards;
	}
	free(cardnum);
	if (ret_rows)
		*ret_rows = rows;
	else
		free(rows);
	return 0;
nomem:
	free(cardnum);
	free(rows);
	reg_finish(reg);
	return -ENOMEM;
}

int
reg_generate(struct reg *reg, uint64_t seed)
{
	return generate(reg, seed, NULL);
}

void
reg_finish(struct reg *reg)
{
	free(reg->hh);
	reg->hh = NULL;
	reg->n = 0;
}

int
reg_isolate(struct reg *reg, uint64_t seed)
{
	struct rng r;
	int *idx;

	if (reg->n < SIM_N_ISOLATED + 3) {
		tool_err("the register has %zu households; the simulation needs at least %d",
			 reg->n, SIM_N_ISOLATED + 3);
		return -1;
	}
	idx = malloc(reg->n * sizeof(*idx));
	if (!idx) {
		tool_err("out of memory");
		return -1;
	}
	for (size_t i = 0; i < reg->n; i++)
		idx[i] = (int)i;
	rng_seed(&r, seed, STREAM_ISOLATION);
	for (int i = 0; i < SIM_N_ISOLATED; i++) {
		size_t j = (size_t)i + (size_t)rng_below(&r, reg->n - (size_t)i);
		int t = idx[i];

		idx[i] = idx[j];
		idx[j] = t;
		reg->isolated[i] = idx[i];
	}
	free(idx);
	return 0;
}

void
reg_second_card(struct reg *reg, uint64_t seed)
{
	struct rng r;
	size_t n = 0, pick;

	reg->second_card = -1;
	for (size_t i = 0; i < reg->n; i++) {
		bool isolated = false;

		for (int k = 0; k < SIM_N_ISOLATED; k++)
			isolated |= reg->isolated[k] == (int)i;
		n += !isolated && reg->hh[i].ncards >= 2;
	}
	if (n == 0)
		return;
	rng_seed(&r, seed, STREAM_SECOND_CARD);
	pick = (size_t)rng_below(&r, n);
	for (size_t i = 0; i < reg->n; i++) {
		bool isolated = false;

		for (int k = 0; k < SIM_N_ISOLATED; k++)
			isolated |= reg->isolated[k] == (int)i;
		if (!isolated && reg->hh[i].ncards >= 2 && pick-- == 0) {
			reg->second_card = (int)i;
			return;
		}
	}
}

void
reg_volunteer(char *buf, size_t len, int k)
{
	snprintf(buf, len, "vol-%02d", k + 1);
}

/* ---------------------------------------------------------------- CSV */

/* Splits a CSV line in place (no quoted commas in a register; surrounding
 * double quotes are dropped). Returns the number of fields. */
static int
split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < max) {
		char *end = strchr(p, ',');
		size_t len;

		if (end)
			*end = '\0';
		len = strlen(p);
		if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
			p[len - 1] = '\0';
			p++;
		}
		f[n++] = p;
		if (!end)
			break;
		p = end + 1;
	}
	return n;
}

int
reg_read(struct reg *reg, const char *path)
{
	char line[4096], *f[32];
	int col_hh = -1, col_size = -1, col_cards = -1, nf;
	size_t cap = 0, lineno = 1;
	FILE *in = fopen(path, "r");

	memset(reg, 0, sizeof(*reg));
	reg->second_card = -1;
	if (!in) {
		tool_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (!fgets(line, sizeof(line), in)) {
		tool_err("%s: empty file", path);
		goto fail;
	}
	nf = split(line, f, 32);
	for (int i = 0; i < nf; i++) {
		if (strcmp(f[i], "household") == 0)
			col_hh = i;
		else if (strcmp(f[i], "size") == 0)
			col_size = i;
		else if (strcmp(f[i], "cards") == 0)
			col_cards = i;
	}
	if (col_hh < 0 || col_size < 0 || col_cards < 0) {
		tool_err("%s: the header needs household, size and cards", path);
		goto fail;
	}
	while (fgets(line, sizeof(line), in)) {
		struct household *h;
		char *card, *save = NULL;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		nf = split(line, f, 32);
		if (nf <= col_hh || nf <= col_size || nf <= col_cards || !f[col_hh][0] ||
		    strlen(f[col_hh]) >= SIM_ID_MAX) {
			tool_err("%s:%zu: not a household row", path, lineno);
			goto fail;
		}
		if (reg->n == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			struct household *nh = realloc(reg->hh, ncap * sizeof(*nh));

			if (!nh) {
				tool_err("out of memory");
				goto fail;
			}
			reg->hh = nh;
			cap = ncap;
		}
		h = &reg->hh[reg->n];
		memset(h, 0, sizeof(*h));
		snprintf(h->id, sizeof(h->id), "%s", f[col_hh]);
		h->size = atoi(f[col_size]);
		for (card = strtok_r(f[col_cards], ";", &save); card && h->ncards < SIM_CARDS_MAX;
		     card = strtok_r(NULL, ";", &save))
			if (*card && strlen(card) < SIM_ID_MAX)
				snprintf(h->card[h->ncards++], SIM_ID_MAX, "%s", card);
		if (h->ncards == 0) {
			tool_err("%s:%zu: household %s has no card", path, lineno, h->id);
			goto fail;
		}
		reg->residents += h->size;
		reg->cards += h->ncards;
		reg->n++;
	}
	if (ferror(in)) {
		tool_err("%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(in);
	return 0;
fail:
	fclose(in);
	reg_finish(reg);
	return -1;
}

static int
write_csv(const struct reg *reg, const struct row *rows, const char *path)
{
	FILE *out = fopen(path, "w");

	if (!out) {
		tool_err("%s: %s", path, strerror(errno));
		return -1;
	}
	fputs("household,building,unit,room,size,phone,cards\n", out);
	for (size_t i = 0; i < reg->n; i++) {
		const struct household *h = &reg->hh[i];

		fprintf(out, "%s,%d,%d,%s,%d,%s,%s", h->id, rows[i].building, rows[i].unit,
			rows[i].room, h->size, rows[i].phone, h->card[0]);
		for (int c = 1; c < h->ncards; c++)
			fprintf(out, ";%s", h->card[c]);
		fputc('\n', out);
	}
	if (fclose(out) != 0) {
		tool_err("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- register */

static const char synopsis[] = "register --site S --out FILE.csv [--seed N] [--script FILE.sh] "
			       "[--sql FILE.sql]\n      [--faults all|none|LIST]";

static void
setup_commands(FILE *out, const struct reg *reg, const char *site)
{
	const char *pre = "\"$CORDONCTL\" -c \"$CORDON_CONF\" ";

	fprintf(out, "%sgate add %s %s\n", pre, site, SIM_OPEN_GATE);
	for (int g = 2; g <= SIM_N_GATES; g++)
		fprintf(out, "%sgate add %s G%02d --sealed\n", pre, site, g);
	for (int z = 1; z <= SIM_N_ZONES; z++)
		fprintf(out, "%szone add %s Z%02d --interval 1m\n", pre, site, z);
	for (int i = 0; i < SIM_N_ISOLATED; i++)
		fprintf(out, "%sisolate %s --household %s --days 14 --check-interval 1m\n", pre,
			site, reg->hh[reg->isolated[i]].id);
}

/* The --sql file: the carers' cards, the volunteers, the missed_check
 * household's order backdated. Ids are the generated ones and the site an
 * id (tool_valid_id), so they are written as literals. 0 or -1 (printed). */
static int
write_sql(const struct reg *reg, const char *site, long long seed, bool second_card,
	  const char *path)
{
	static const char *const prefixes[] = { "135", "138", "139", "150", "186", "189" };
	FILE *f = fopen(path, "w");
	struct rng r;
	int n = 0;

	if (!f) {
		tool_err("%s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f,
		"-- cordon-sim register --site %s --seed %lld: what the household CSV cannot say\n",
		site, seed);
	fputs("\n-- One card a household is the rule; every second card is a carer's (extra).\n",
	      f);
	if (second_card && reg->second_card >= 0)
		fprintf(f, "-- The second_card fault: household %s keeps two ordinary cards.\n",
			reg->hh[reg->second_card].id);
	fprintf(f,
		"UPDATE cards SET extra = true, reason = 'carer'\n WHERE site = '%s' AND card IN (",
		site);
	for (size_t i = 0; i < reg->n; i++) {
		const struct household *h = &reg->hh[i];

		if (second_card && (int)i == reg->second_card)
			continue;
		for (int c = 1; c < h->ncards; c++) {
			fprintf(f, "%s'%s'", n == 0 ? "\n  " : n % 8 ? ", " : ",\n  ", h->card[c]);
			n++;
		}
	}
	fprintf(f, "%s);\n", n ? "" : "NULL");

	fputs("\n-- The volunteers who deliver (their phones never leave the database).\n"
	      "INSERT INTO volunteers (site, volunteer, team, phone) VALUES",
	      f);
	rng_seed(&r, (uint64_t)seed, STREAM_VOLUNTEERS);
	for (int k = 0; k < SIM_N_VOLUNTEERS; k++) {
		const char *prefix =
			prefixes[rng_below(&r, sizeof(prefixes) / sizeof(prefixes[0]))];
		char id[16];

		reg_volunteer(id, sizeof(id), k);
		fprintf(f, "%s\n  ('%s', '%s', 'team-%d', '%s%08u')", k ? "," : "", site, id,
			k * 4 / SIM_N_VOLUNTEERS + 1, prefix, (unsigned)rng_below(&r, 100000000));
	}
	fputs("\nON CONFLICT (site, volunteer) DO UPDATE SET team = EXCLUDED.team, phone = "
	      "EXCLUDED.phone;\n",
	      f);

	fprintf(f,
		"\n-- The missed_check household: its order started an hour ago, no check since.\n"
		"UPDATE isolation_orders SET starts_at = now() - interval '1 hour'\n"
		" WHERE site = '%s' AND household = '%s' AND released_at IS NULL;\n",
		site, reg->hh[reg->isolated[0]].id);
	if (fclose(f) != 0) {
		tool_err("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
sim_register(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 'S' },
		{ "script", required_argument, NULL, 'x' },
		{ "sql", required_argument, NULL, 'q' },
		{ "faults", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *site = NULL, *out = NULL, *script = NULL, *sql = NULL;
	long long seed = 1;
	struct row *rows = NULL;
	struct reg reg;
	FILE *f = stdout;
	unsigned faults = SIM_ALL_FAULTS;
	long carers = 0;
	bool fault;
	int c, rc = SIM_FAILED;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 's': site = optarg; break;
		case 'o': out = optarg; break;
		case 'x': script = optarg; break;
		case 'q': sql = optarg; break;
		case 'f':
			if (sim_parse_faults(optarg, &faults) < 0)
				return SIM_USAGE;
			break;
		case 'S':
			if (sim_parse_int(optarg, 0, INT64_MAX, &seed) < 0)
				return tool_usage(synopsis, "--seed: not a number: '%s'", optarg);
			break;
		case 'h': printf("usage: cordon-sim %s\n", synopsis); return 0;
		case ':': return tool_usage(synopsis, "%s needs a value", argv[optind - 1]);
		default: return tool_usage(synopsis, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return tool_usage(synopsis, "unexpected argument '%s'", argv[optind]);
	if (!site || !out)
		return tool_usage(synopsis, "--site and --out are required");
	if (!tool_valid_id(site))
		return tool_usage(synopsis, "--site: not an id ([A-Za-z0-9_-]{1,64}): '%s'", site);

	if (generate(&reg, (uint64_t)seed, &rows) < 0) {
		tool_err("out of memory");
		return SIM_FAILED;
	}
	if (reg_isolate(&reg, (uint64_t)seed) < 0 || write_csv(&reg, rows, out) < 0)
		goto out;
	reg_second_card(&reg, (uint64_t)seed);
	if (script && !(f = fopen(script, "w"))) {
		tool_err("%s: %s", script, strerror(errno));
		goto out;
	}
	fprintf(f,
		"#!/bin/sh\n# cordon-sim register --seed %lld: gates, zones, isolation orders\n"
		"set -e\n",
		seed);
	setup_commands(f, &reg, site);
	if (script) {
		if (fclose(f) != 0 || chmod(script, 0755) < 0) {
			tool_err("%s: %s", script, strerror(errno));
			goto out;
		}
	} else {
		fflush(stdout);
	}
	if (sql && write_sql(&reg, site, seed, faults & (1u << F_SECOND_CARD), sql) < 0)
		goto out;
	for (size_t i = 0; i < reg.n; i++)
		carers += reg.hh[i].ncards - 1;
	fprintf(stderr,
		"cordon-sim: register %s (seed %lld): %d buildings, %zu households, "
		"%ld residents, %ld cards; %d gates (%d sealed), %d zones, %d isolated households\n",
		out, seed, reg.buildings, reg.n, reg.residents, reg.cards, SIM_N_GATES,
		SIM_N_GATES - 1, SIM_N_ZONES, SIM_N_ISOLATED);
	fault = (faults & (1u << F_SECOND_CARD)) && reg.second_card >= 0;
	if (sql)
		fprintf(stderr, "cordon-sim: %s: %ld carers' cards (extra), %d volunteers%s%s\n",
			sql, carers - fault, SIM_N_VOLUNTEERS,
			fault ? "; second_card: household with two ordinary cards " : "",
			fault ? reg.hh[reg.second_card].id : "");
	else
		fprintf(stderr,
			"cordon-sim: without --sql, second cards are left ordinary "
			"(not carers') and no volunteer is registered\n");
	rc = 0;
out:
	free(rows);
	reg_finish(&reg);
	return rc;
}
