/* ctl_import.c - cordonctl import households|residents: the register CSVs.
 *
 * The file is read and checked whole before anything is written: a
 * RFC 4180 reader (double quotes, "" inside quotes, CRLF, a UTF-8 BOM)
 * feeds per-row checks that report every bad row as FILE:LINE: reason.
 * The good rows go by COPY into temporary tables, where one query finds the
 * cards already owned by another household; then, unless any row was bad,
 * INSERT ... ON CONFLICT upserts households and cards, and the transaction
 * ends with NOTIFY cordon_register. Any error: ROLLBACK, nothing imported. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "idhash.h"

#define IMPORT "import households FILE.csv --site S"
#define HEADER "household,building,unit,room,size,phone,cards"
#define NCOLS 7
#define MAX_REPORTED 100 /* bad rows printed */
#define MAX_RECORD 65536 /* bytes of one record */
#define MAX_FIELDS 16	 /* fields kept of one record (more are counted) */
#define MAX_CARDS 64	 /* cards of one household */
#define MAX_TEXT 64	 /* bytes of building, unit, room */

/* ---------------------------------------------------------------- buffers */

struct buf {
	char *p;
	size_t len, cap;
};

/* Appends n bytes; 0 or -1 when out of memory. */
static int
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (b->len + n + 1 > cap)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* Appends a field for COPY's text format: backslashes doubled (the checks
 * have refused control characters, so nothing else needs escaping). */
static int
buf_copy_field(struct buf *b, const char *s, char sep)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\' && buf_add(b, "\\\\", 2) < 0)
			return -1;
		if (*p != '\\' && buf_add(b, p, 1) < 0)
			return -1;
	}
	return buf_add(b, &sep, 1);
}

/* ---------------------------------------------------------------- CSV reader */

struct csv {
	FILE *in;
	int line;	/* physical lines consumed */
	int start_line; /* where the current record starts */
	struct buf rec; /* the fields' bytes, each NUL-terminated */
	size_t off[MAX_FIELDS];
	int nfields;	   /* may exceed MAX_FIELDS */
	const char *error; /* a syntax error in this record, or NULL */
};

static const char *
csv_field(const struct csv *c, int i)
{
	return c->rec.p + c->off[i];
}

static int
csv_put(struct csv *c, int ch)
{
	char b = (char)ch;

	if (ch == '\0') {
		c->error = "NUL byte in the record";
		return 0;
	}
	if (c->rec.len >= MAX_RECORD) {
		c->error = "record longer than 64 KiB";
		return 0;
	}
	return buf_add(&c->rec, &b, 1);
}

static int
csv_start_field(struct csv *c)
{
	if (c->nfields < MAX_FIELDS)
		c->off[c->nfields] = c->rec.len;
	c->nfields++;
	return 0;
}

/* Terminates the current field; strips the '\r' of a CRLF when asked. */
static int
csv_end_field(struct csv *c, int strip_cr)
{
	size_t start = c->off[c->nfields <= MAX_FIELDS ? c->nfields - 1 : 0];

	if (c->nfields > MAX_FIELDS)
		return 0;
	if (strip_cr && c->rec.len > start && c->rec.p[c->rec.len - 1] == '\r')
		c->rec.len--;
	return buf_add(&c->rec, "\0", 1);
}

/* Reads the next record, skipping blank lines. Returns 1 (a record, with
 * c->error set when it is malformed), 0 at the end of the file, or -1 when
 * out of memory. */
static int
csv_read(struct csv *c)
{
	enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN, CR_SEEN } st;
	int ch, first_quoted;

restart:
	st = FIELD_START;
	first_quoted = 0;
	c->rec.len = 0;
	c->nfields = 0;
	c->error = NULL;
	c->start_line = c->line + 1;
	csv_start_field(c);
	for (;;) {
		ch = getc_unlocked(c->in);
		if (ch == EOF) {
			if (ferror(c->in)) {
				c->error = "read error";
				return 1;
			}
			if (st == FIELD_START && c->nfields == 1 && c->rec.len == 0)
				return 0; /* nothing after the last newline */
			if (st == QUOTED)
				c->error = "unterminated quoted field";
			c->line++;
			return csv_end_field(c, st == UNQUOTED) < 0 ? -1 : 1;
		}
		switch (st) {
		case FIELD_START:
			if (ch == '"') {
				first_quoted |= c->nfields == 1;
				st = QUOTED;
				continue;
			}
			st = UNQUOTED;
			/* fall through */
		case UNQUOTED:
			if (ch == ',') {
				if (csv_end_field(c, 0) < 0)
					return -1;
				csv_start_field(c);
				st = FIELD_START;
			} else if (ch == '\n') {
				c->line++;
				if (csv_end_field(c, 1) < 0)
					return -1;
				if (c->nfields == 1 && !first_quoted && c->rec.p[c->off[0]] == '\0')
					goto restart; /* a blank line */
				return 1;
			} else {
				if (ch == '"' && !c->error)
					c->error = "double quote inside an unquoted field "
						   "(quote the whole field and double the quote)";
				if (csv_put(c, ch) < 0)
					return -1;
			}
			break;
		case QUOTED:
			if (ch == '"') {
				st = QUOTE_SEEN;
				break;
			}
			if (ch == '\n')
				c->line++;
			if (csv_put(c, ch) < 0)
				return -1;
			break;
		case QUOTE_SEEN:
			if (ch == '"') {
				st = QUOTED;
				if (csv_put(c, ch) < 0)
					return -1;
			} else if (ch == ',') {
				if (csv_end_field(c, 0) < 0)
					return -1;
				csv_start_field(c);
				st = FIELD_START;
			} else if (ch == '\r') {
				st = CR_SEEN;
			} else if (ch == '\n') {
				c->line++;
				return csv_end_field(c, 0) < 0 ? -1 : 1;
			} else {
				if (!c->error)
					c->error = "text after the closing quote of a field";
				st = UNQUOTED;
				if (csv_put(c, ch) < 0)
					return -1;
			}
			break;
		case CR_SEEN:
			if (ch == '\n') {
				c->line++;
				return csv_end_field(c, 0) < 0 ? -1 : 1;
			}
			if (!c->error)
				c->error = "carriage return after the closing quote of a field";
			ungetc(ch, c->in);
			st = UNQUOTED;
			break;
		}
	}
}

/* ---------------------------------------------------------------- id sets */

struct idset {
	struct ident {
		char *key;
		int line;
	} * tab;
	size_t cap, n;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct ident *
idset_slot(struct ident *tab, size_t cap, const char *key)
{
	size_t i = (size_t)hash_str(key) & (cap - 1);

	while (tab[i].key && strcmp(tab[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* Adds key, first seen on `line`. Returns 0 when it is new, the line where
 * it was seen before, or -1 when out of memory. */
static int
idset_add(struct idset *s, const char *key, int line)
{
	struct ident *e;

	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		struct ident *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->tab[i].key)
				*idset_slot(tab, cap, s->tab[i].key) = s->tab[i];
		free(s->tab);
		s->tab = tab;
		s->cap = cap;
	}
	e = idset_slot(s->tab, s->cap, key);
	if (e->key)
		return e->line;
	e->key = strdup(key);
	if (!e->key)
		return -1;
	e->line = line;
	s->n++;
	return 0;
}

static void
idset_finish(struct idset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->tab[i].key);
	free(s->tab);
}

/* ---------------------------------------------------------------- row checks */

/* The bad rows, in line order, as "LINE\tREASON"; only the first
 * MAX_REPORTED are kept, all are counted. */
struct report {
	int lines[MAX_REPORTED];
	char *reasons[MAX_REPORTED];
	int kept;
	long total;
};

static int
report_add(struct report *r, int line, const char *reason)
{
	r->total++;
	if (r->kept >= MAX_REPORTED)
		return 0;
	r->reasons[r->kept] = strdup(reason);
	if (!r->reasons[r->kept])
		return -1;
	r->lines[r->kept++] = line;
	return 0;
}

/* Prints the bad rows found as FILE:LINE: reason (the first
 * MAX_REPORTED, then a count) and that nothing was imported; nothing when
 * there were none. */
static void
report_print(const struct report *r, const char *path)
{
	if (!r->total)
		return;
	for (int i = 0; i < r->kept; i++)
		fprintf(stderr, "%s:%d: %s\n", path, r->lines[i], r->reasons[i]);
	if (r->total > r->kept)
		fprintf(stderr, "%s: ... and %ld more bad rows\n", path, r->total - r->kept);
	tool_err("%ld bad row%s in %s: nothing imported", r->total, r->total == 1 ? "" : "s", path);
}

static void
report_finish(struct report *r)
{
	for (int i = 0; i < r->kept; i++)
		free(r->reasons[i]);
}

/* Appends "; reason" (or the first reason) to a row's message. */
static void reason(char *msg, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
reason(char *msg, size_t len, const char *fmt, ...)
{
	size_t n = strlen(msg);
	va_list ap;

	if (n + 3 >= len)
		return;
	if (n)
		n += (size_t)snprintf(msg + n, len - n, "; ");
	va_start(ap, fmt);
	vsnprintf(msg + n, len - n, fmt, ap);
	va_end(ap);
}

/* A value shown in a message: at most 40 bytes, controls as '?'. */
static const char *
shown(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; i < 40 && i + 4 < len && s[i]; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (s[i] && i + 4 < len) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Why a building/unit/room text is refused, or NULL when it is fine:
 * at most MAX_TEXT bytes, valid UTF-8, no control characters. */
static const char *
text_problem(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (strlen(s) > MAX_TEXT)
		return "is longer than 64 bytes";
	while (*p) {
		int n = 0;
		unsigned cp;

		if (*p < 0x20 || *p == 0x7f)
			return "has a control character";
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else {
			return "is not valid UTF-8";
		}
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return "is not valid UTF-8";
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return "is not valid UTF-8";
		p += n + 1;
	}
	return NULL;
}

static int
all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

struct import {
	const char *path;
	struct idset households, cards;
	struct report bad;
	struct buf copy_households, copy_cards;
	long rows, ncards;
};

/* Checks one record (line c->start_line); a good row is appended to the
 * COPY buffers, a bad one to the report. 0, or -1 when out of memory. */
static int
check_row(struct import *im, struct csv *c)
{
	static const char *const text_cols[] = { "building", "unit", "room" };
	const char *hh, *size, *phone;
	char msg[1024] = "", v[48], linebuf[16], card[72];
	int line = c->start_line, ncards = 0, empty_card = 0, seen;
	struct buf row = { 0 };
	int rc = -1;

	im->rows++;
	if (c->error)
		return report_add(&im->bad, line, c->error);
	if (c->nfields != NCOLS) {
		snprintf(msg, sizeof(msg), "expected 7 fields (" HEADER "), found %d", c->nfields);
		return report_add(&im->bad, line, msg);
	}
	hh = csv_field(c, 0);
	if (!*hh) {
		reason(msg, sizeof(msg), "empty household");
	} else if (!tool_valid_id(hh)) {
		reason(msg, sizeof(msg), "bad household id '%s' (use 1 to 64 of A-Z a-z 0-9 _ -)",
		       shown(hh, v, sizeof(v)));
	} else if ((seen = idset_add(&im->households, hh, line)) < 0) {
		return -1;
	} else if (seen) {
		reason(msg, sizeof(msg), "household %s is also on line %d", hh, seen);
	}
	for (int i = 0; i < 3; i++) {
		const char *why = text_problem(csv_field(c, 1 + i));

		if (why)
			reason(msg, sizeof(msg), "%s %s", text_cols[i], why);
	}
	size = csv_field(c, 4);
	if (!all_digits(size) || strlen(size) > 2 || atoi(size) > 50)
		reason(msg, sizeof(msg), "size '%s' is not a whole number from 0 to 50",
		       shown(size, v, sizeof(v)));
	phone = csv_field(c, 5);
	if (*phone && (!all_digits(phone) || strlen(phone) != 11))
		reason(msg, sizeof(msg), "phone is not 11 digits"); /* never shown */

	/* Cards: ';'-separated ids; an empty one (";;", a leading or trailing
	 * ';') is an error, an empty field means no cards. */
	snprintf(linebuf, sizeof(linebuf), "%d\t", line);
	for (const char *p = csv_field(c, 6); *p; p++) {
		size_t n = strcspn(p, ";");

		if (++ncards > MAX_CARDS) {
			reason(msg, sizeof(msg), "more than %d cards", MAX_CARDS);
			break;
		}
		memcpy(card, p, n < sizeof(card) ? n : sizeof(card) - 1);
		card[n < sizeof(card) ? n : sizeof(card) - 1] = '\0';
		if (n == 0) {
			if (!empty_card)
				reason(msg, sizeof(msg), "empty card id in cards");
			empty_card = 1;
		} else if (n > 64 || !tool_valid_id(card)) {
			reason(msg, sizeof(msg),
			       "bad card id '%s' (use 1 to 64 of A-Z a-z 0-9 _ -)",
			       shown(card, v, sizeof(v)));
		} else if ((seen = idset_add(&im->cards, card, line)) < 0) {
			goto out;
		} else if (seen == line) {
			reason(msg, sizeof(msg), "card %s is listed twice", card);
		} else if (seen) {
			reason(msg, sizeof(msg), "card %s is also listed on line %d", card, seen);
		} else if (buf_str(&row, linebuf) < 0 || buf_copy_field(&row, hh, '\t') < 0 ||
			   buf_copy_field(&row, card, '\n') < 0) {
			goto out;
		}
		p += n;
		if (!*p)
			break;
		if (!p[1]) { /* a trailing ';' */
			if (!empty_card)
				reason(msg, sizeof(msg), "empty card id in cards");
			break;
		}
	}
	if (msg[0]) {
		rc = report_add(&im->bad, line, msg);
		goto out;
	}
	if (buf_str(&im->copy_households, linebuf) < 0 ||
	    buf_copy_field(&im->copy_households, hh, '\t') < 0 ||
	    buf_copy_field(&im->copy_households, csv_field(c, 1), '\t') < 0 ||
	    buf_copy_field(&im->copy_households, csv_field(c, 2), '\t') < 0 ||
	    buf_copy_field(&im->copy_households, csv_field(c, 3), '\t') < 0 ||
	    buf_copy_field(&im->copy_households, size, '\t') < 0 ||
	    buf_str(&im->copy_households, *phone ? phone : "\\N") < 0 ||
	    buf_add(&im->copy_households, "\n", 1) < 0 ||
	    (row.len && buf_add(&im->copy_cards, row.p, row.len) < 0))
		goto out;
	im->ncards += ncards;
	rc = 0;
out:
	free(row.p);
	return rc;
}

/* Reads and checks the whole file. Returns 0 (rows checked; bad ones in
 * im->bad) or -1 after printing why the file cannot be used at all. */
static int
read_file(struct import *im)
{
	struct csv c = { 0 };
	const char *h0;
	int rc, ret = -1;

	c.in = fopen(im->path, "r");
	if (!c.in) {
		tool_err("cannot open %s: %s", im->path, strerror(errno));
		return -1;
	}
	rc = csv_read(&c);
	if (rc == 0) {
		tool_err("%s: empty file (the first line must be the header " HEADER ")", im->path);
		goto out;
	}
	if (rc < 0)
		goto oom;
	h0 = c.nfields >= 1 ? csv_field(&c, 0) : "";
	if (strncmp(h0, "\xef\xbb\xbf", 3) == 0)
		h0 += 3;
	if (c.error || c.nfields != NCOLS || strcmp(h0, "household") != 0 ||
	    strcmp(csv_field(&c, 1), "building") != 0 || strcmp(csv_field(&c, 2), "unit") != 0 ||
	    strcmp(csv_field(&c, 3), "room") != 0 || strcmp(csv_field(&c, 4), "size") != 0 ||
	    strcmp(csv_field(&c, 5), "phone") != 0 || strcmp(csv_field(&c, 6), "cards") != 0) {
		fprintf(stderr, "%s:%d: the header must be exactly " HEADER "\n", im->path,
			c.start_line);
		goto out;
	}
	while ((rc = csv_read(&c)) == 1)
		if (check_row(im, &c) < 0)
			goto oom;
	if (rc < 0)
		goto oom;
	ret = 0;
	goto out;
oom:
	tool_err("out of memory reading %s", im->path);
out:
	fclose(c.in);
	free(c.rec.p);
	return ret;
}

/* ---------------------------------------------------------------- database */

/* Runs COPY `sql` FROM STDIN with the rows in `data`. 0 or -1. */
static int
copy_in(struct ctl *ctl, const char *what, const char *sql, const struct buf *data)
{
	PGresult *res = PQexec(ctl->conn, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_IN;

	PQclear(res);
	if (ok) {
		for (size_t off = 0; ok && off < data->len; off += 1 << 20) {
			size_t n = data->len - off < (1u << 20) ? data->len - off : 1u << 20;

			ok = PQputCopyData(ctl->conn, data->p + off, (int)n) == 1;
		}
		ok = PQputCopyEnd(ctl->conn, ok ? NULL : "client error") == 1 && ok;
		res = PQgetResult(ctl->conn);
		ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
	} else {
		res = NULL;
	}
	if (!ok) {
		const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(ctl->conn);

		tool_err("%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
	}
	PQclear(res);
	while ((res = PQgetResult(ctl->conn)))
		PQclear(res);
	return ok ? 0 : -1;
}

/* Runs `sql` ($1: the site), which finds rows PostgreSQL refuses: it
 * returns (line, reason, count(*) OVER ()) in line order, at most
 * MAX_REPORTED; merges them into the report in line order. 0 or -1. */
static int
check_in_db(struct ctl *ctl, struct report *bad, const char *what, const char *sql,
	    const char *site)
{
	const char *params[] = { site };
	struct report merged = { 0 };
	PGresult *res;
	int i = 0, j = 0, n, rc = 0;

	res = ctl_query(ctl, what, sql, 1, params);
	if (!res)
		return -1;
	n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return 0;
	}
	while (rc == 0 && (i < bad->kept || j < n)) {
		int dbline = j < n ? atoi(PQgetvalue(res, j, 0)) : 0;

		if (j >= n || (i < bad->kept && bad->lines[i] <= dbline)) {
			rc = report_add(&merged, bad->lines[i], bad->reasons[i]);
			i++;
		} else {
			rc = report_add(&merged, dbline, PQgetvalue(res, j, 1));
			j++;
		}
	}
	merged.total = bad->total + atol(PQgetvalue(res, 0, 2));
	PQclear(res);
	report_finish(bad);
	*bad = merged;
	if (rc < 0)
		tool_err("out of memory");
	return rc;
}

/* Adds the cards that another household owns to the report. 0 or -1. */
static int
check_owned_cards(struct ctl *ctl, struct import *im, const char *site)
{
	return check_in_db(ctl, &im->bad, "checking card owners",
			   "SELECT i.line, 'card ' || i.card || ' belongs to household '"
			   " || c.household, count(*) OVER ()"
			   " FROM import_cards i JOIN cards c ON c.site = $1 AND c.card = i.card"
			   " WHERE c.household <> i.household ORDER BY i.line, i.card LIMIT 100",
			   site);
}

/* Upserts from the temporary tables; prints the counts. 0 or -1. */
static int
upsert(struct ctl *ctl, struct import *im, const char *site, double started)
{
	const char *params[] = { site };
	PGresult *hres, *cres;
	struct timespec now;
	long hnew, hupd, cnew;

	hres = ctl_query(
		ctl, "importing households",
		"WITH up AS (INSERT INTO households"
		"  (site, household, building, unit, room, size, phone)"
		"  SELECT $1, household, building, unit, room, size, phone"
		"  FROM import_households"
		"  ON CONFLICT (site, household) DO UPDATE SET building = excluded.building,"
		"   unit = excluded.unit, room = excluded.room, size = excluded.size,"
		"   phone = excluded.phone"
		"  WHERE (households.building, households.unit, households.room,"
		"   households.size, households.phone) IS DISTINCT FROM"
		"   (excluded.building, excluded.unit, excluded.room, excluded.size,"
		"   excluded.phone)"
		"  RETURNING xmax = 0 AS inserted)"
		" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
		" FROM up",
		1, params);
	if (!hres)
		return -1;
	hnew = atol(PQgetvalue(hres, 0, 0));
	hupd = atol(PQgetvalue(hres, 0, 1));
	PQclear(hres);
	/* Cards owned by another household were refused above; the others
	 * are ours already (their state and extra flag are left alone). */
	cres = ctl_query(ctl, "importing cards",
			 "WITH ins AS (INSERT INTO cards (site, card, household)"
			 "  SELECT $1, card, household FROM import_cards"
			 "  ON CONFLICT (site, card) DO NOTHING RETURNING 1)"
			 " SELECT count(*) FROM ins",
			 1, params);
	if (!cres)
		return -1;
	cnew = atol(PQgetvalue(cres, 0, 0));
	PQclear(cres);
	if (ctl_commit(ctl, site) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	printf("imported %s into site %s in %.2f s: %ld row%s; households: %ld new, %ld updated, "
	       "%ld unchanged; cards: %ld new, %ld unchanged\n",
	       im->path, site, (double)now.tv_sec + now.tv_nsec / 1e9 - started, im->rows,
	       im->rows == 1 ? "" : "s", hnew, hupd, im->rows - hnew - hupd, cnew,
	       im->ncards - cnew);
	return 0;
}

int
ctl_cmd_import(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *site = NULL;
	const struct ctl_opt opts[] = { { "--site", &site, NULL }, { NULL, NULL, NULL } };
	const char *params[1];
	struct import im = { 0 };
	struct timespec t0;
	double started;
	int ret = CTL_FAIL;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	started = (double)t0.tv_sec + t0.tv_nsec / 1e9;
	if (ctl_parse(IMPORT, argc, argv, opts, pos, 1, 1) < 0)
		return CTL_USAGE;
	if (!site)
		return tool_usage(IMPORT, "--site is required");
	if (ctl_check_id(IMPORT, "site", site) < 0)
		return CTL_USAGE;
	im.path = pos[0];
	params[0] = site;
	if (read_file(&im) < 0)
		goto out;
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0)
		goto out;
	/* One import per site at a time: the owner check must hold until COMMIT. */
	if (ctl_exec(ctl, "locking the site's register",
		     "SELECT pg_advisory_xact_lock(hashtext('cordon_register'), hashtext($1))", 1,
		     params) < 0 ||
	    ctl_ensure_site(ctl, site) < 0 ||
	    ctl_exec(ctl, "creating temporary tables",
		     "CREATE TEMPORARY TABLE import_households (line integer, household text,"
		     " building text, unit text, room text, size integer, phone text)"
		     " ON COMMIT DROP",
		     0, NULL) < 0 ||
	    ctl_exec(ctl, "creating temporary tables",
		     "CREATE TEMPORARY TABLE import_cards (line integer, household text, card text)"
		     " ON COMMIT DROP",
		     0, NULL) < 0 ||
	    copy_in(ctl, "loading households", "COPY import_households FROM STDIN",
		    &im.copy_households) < 0 ||
	    copy_in(ctl, "loading cards", "COPY import_cards FROM STDIN", &im.copy_cards) < 0 ||
	    check_owned_cards(ctl, &im, site) < 0)
		goto out;
	if (im.bad.total)
		goto out;
	if (upsert(ctl, &im, site, started) < 0)
		goto out;
	ret = CTL_OK;
out:
	/* The bad rows found, even when PostgreSQL failed us afterwards. */
	report_print(&im.bad, im.path);
	ctl_rollback(ctl);
	idset_finish(&im.households);
	idset_finish(&im.cards);
	report_finish(&im.bad);
	free(im.copy_households.p);
	free(im.copy_cards.p);
	return ret;
}

/* ---------------------------------------------------------------- residents
 *
 * import residents FILE.csv --site S: the residents' register. The same
 * reader, report and all-or-nothing transaction as households; the
 * header names the columns (any order): household, person, born, phone,
 * id_number and, optionally, name. An ID number is hashed (idhash.c)
 * while its row is checked and only the hash goes on; without
 * [site] id_key_file the numbers are dropped with a warning. */

#define IMPORT_RESIDENTS "import residents FILE.csv --site S"
#define RESIDENTS_HEADER "household,person,born,phone,id_number[,name]"

enum { R_HOUSEHOLD, R_PERSON, R_BORN, R_PHONE, R_ID, R_NAME, R_NCOLS };

static const char *const resident_columns[R_NCOLS] = { "household", "person",	 "born",
						       "phone",	    "id_number", "name" };

struct residents {
	const char *path;
	char today[16];	    /* YYYY-MM-DD (UTC): no one is born later */
	int col[R_NCOLS];   /* the field of each column; -1: no name column */
	int nfields;	    /* of the header */
	const uint8_t *key; /* [site] id_key_file, NULL: none */
	size_t key_len;
	struct idset persons, ids;
	struct report bad;
	struct buf copy;
	long rows, hashed, dropped;
};

/* 1 when s is a date YYYY-MM-DD of the Gregorian calendar from 1900 on. */
static int
is_date(const char *s)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] + (m == 2 && leap);
}

/* Checks one record; a good row goes to the COPY buffer, a bad one to
 * the report. Values of born, phone, id_number and name are never shown.
 * 0, or -1 when out of memory. */
static int
check_resident(struct residents *im, struct csv *c)
{
	const char *hh, *person, *born, *phone, *id, *name = "";
	char msg[1024] = "", v[48], linebuf[16], hash[IDHASH_SIZE] = "";
	int line = c->start_line, seen;

	im->rows++;
	if (c->error)
		return report_add(&im->bad, line, c->error);
	if (c->nfields != im->nfields) {
		snprintf(msg, sizeof(msg), "expected %d fields (as the header), found %d",
			 im->nfields, c->nfields);
		return report_add(&im->bad, line, msg);
	}
	hh = csv_field(c, im->col[R_HOUSEHOLD]);
	person = csv_field(c, im->col[R_PERSON]);
	born = csv_field(c, im->col[R_BORN]);
	phone = csv_field(c, im->col[R_PHONE]);
	id = csv_field(c, im->col[R_ID]);
	if (im->col[R_NAME] >= 0)
		name = csv_field(c, im->col[R_NAME]);

	if (!*hh)
		reason(msg, sizeof(msg), "empty household");
	else if (!tool_valid_id(hh))
		reason(msg, sizeof(msg), "bad household id '%s' (use 1 to 64 of A-Z a-z 0-9 _ -)",
		       shown(hh, v, sizeof(v)));
	if (!*person) {
		reason(msg, sizeof(msg), "empty person");
	} else if (idhash_is_id_number(person)) {
		/* Never shown, never stored: it belongs in id_number. */
		reason(msg, sizeof(msg), "person is an ID number (put it in id_number)");
	} else if (!tool_valid_id(person)) {
		reason(msg, sizeof(msg), "bad person id '%s' (use 1 to 64 of A-Z a-z 0-9 _ -)",
		       shown(person, v, sizeof(v)));
	} else if ((seen = idset_add(&im->persons, person, line)) < 0) {
		return -1;
	} else if (seen) {
		reason(msg, sizeof(msg), "person %s is also on line %d", person, seen);
	}
	if (*born && !is_date(born))
		reason(msg, sizeof(msg), "born is not a date YYYY-MM-DD from 1900 on");
	else if (*born && strcmp(born, im->today) > 0)
		reason(msg, sizeof(msg), "born is in the future");
	if (*phone && (!all_digits(phone) || strlen(phone) != 11))
		reason(msg, sizeof(msg), "phone is not 11 digits");
	if (*id && !idhash_is_id_number(id)) {
		reason(msg, sizeof(msg), "id_number is not 17 digits and a check digit or X");
	} else if (*id && im->key) {
		if (idhash_person(im->key, im->key_len, id, hash) < 0) {
			reason(msg, sizeof(msg), "id_number could not be hashed");
		} else if ((seen = idset_add(&im->ids, hash, line)) < 0) {
			return -1;
		} else if (seen) {
			reason(msg, sizeof(msg), "id_number is also on line %d", seen);
		}
	}
	if (*name) {
		const char *why = text_problem(name);

		if (why)
			reason(msg, sizeof(msg), "name %s", why);
	}
	if (msg[0])
		return report_add(&im->bad, line, msg);
	if (*id && im->key)
		im->hashed++;
	else if (*id)
		im->dropped++;
	snprintf(linebuf, sizeof(linebuf), "%d\t", line);
	if (buf_str(&im->copy, linebuf) < 0 || buf_copy_field(&im->copy, hh, '\t') < 0 ||
	    buf_copy_field(&im->copy, person, '\t') < 0 ||
	    (*name ? buf_copy_field(&im->copy, name, '\t') : buf_str(&im->copy, "\\N\t")) < 0 ||
	    buf_str(&im->copy, *born ? born : "\\N") < 0 || buf_add(&im->copy, "\t", 1) < 0 ||
	    buf_str(&im->copy, *phone ? phone : "\\N") < 0 || buf_add(&im->copy, "\t", 1) < 0 ||
	    buf_str(&im->copy, *hash ? hash : "\\N") < 0 || buf_add(&im->copy, "\n", 1) < 0)
		return -1;
	return 0;
}

/* Maps the header's names to columns. 0, or -1 after printing why. */
static int
resident_header(struct residents *im, struct csv *c)
{
	for (int k = 0; k < R_NCOLS; k++)
		im->col[k] = -1;
	im->nfields = c->nfields;
	if (c->error || c->nfields > MAX_FIELDS)
		goto bad;
	for (int i = 0; i < c->nfields; i++) {
		const char *h = csv_field(c, i);
		int k;

		if (i == 0 && strncmp(h, "\xef\xbb\xbf", 3) == 0)
			h += 3;
		for (k = 0; k < R_NCOLS; k++)
			if (strcmp(h, resident_columns[k]) == 0)
				break;
		if (k == R_NCOLS || im->col[k] >= 0)
			goto bad;
		im->col[k] = i;
	}
	for (int k = 0; k < R_NAME; k++)
		if (im->col[k] < 0)
			goto bad;
	return 0;
bad:
	fprintf(stderr,
		"%s:%d: the header must name the columns " RESIDENTS_HEADER
		" (each once, in any order)\n",
		im->path, c->start_line);
	return -1;
}

/* Reads and checks the whole file. 0 (bad rows in im->bad) or -1 after
 * printing why the file cannot be used at all. */
static int
read_residents(struct residents *im)
{
	struct csv c = { 0 };
	int rc, ret = -1;

	c.in = fopen(im->path, "r");
	if (!c.in) {
		tool_err("cannot open %s: %s", im->path, strerror(errno));
		return -1;
	}
	rc = csv_read(&c);
	if (rc == 0) {
		tool_err("%s: empty file (the first line must be the header " RESIDENTS_HEADER ")",
			 im->path);
		goto out;
	}
	if (rc < 0)
		goto oom;
	if (resident_header(im, &c) < 0)
		goto out;
	while ((rc = csv_read(&c)) == 1)
		if (check_resident(im, &c) < 0)
			goto oom;
	if (rc < 0)
		goto oom;
	ret = 0;
	goto out;
oom:
	tool_err("out of memory reading %s", im->path);
out:
	fclose(c.in);
	/* The record buffer held the last ID number read. */
	if (c.rec.p)
		explicit_bzero(c.rec.p, c.rec.cap);
	free(c.rec.p);
	return ret;
}

/* Upserts from import_residents; prints the counts. 0 or -1. */
static int
upsert_residents(struct ctl *ctl, struct residents *im, const char *site, double started)
{
	const char *params[] = { site, im->col[R_NAME] >= 0 ? "true" : "false",
				 im->key ? "true" : "false" };
	struct timespec now;
	PGresult *res;
	long added, updated;
	char ids[96];

	/* Without a name column names stay as they are; without a key, the
	 * hashes. */
	res = ctl_query(
		ctl, "importing residents",
		"WITH up AS (INSERT INTO residents"
		"  (site, person, household, name, born, phone, id_hash)"
		"  SELECT $1, person, household, name, born, phone, id_hash FROM import_residents"
		"  ON CONFLICT (site, person) DO UPDATE SET household = excluded.household,"
		"   name = CASE WHEN $2::boolean THEN excluded.name ELSE residents.name END,"
		"   born = excluded.born, phone = excluded.phone,"
		"   id_hash = CASE WHEN $3::boolean THEN excluded.id_hash ELSE residents.id_hash END"
		"  WHERE (residents.household, residents.name, residents.born, residents.phone,"
		"   residents.id_hash) IS DISTINCT FROM (excluded.household,"
		"   CASE WHEN $2::boolean THEN excluded.name ELSE residents.name END,"
		"   excluded.born, excluded.phone,"
		"   CASE WHEN $3::boolean THEN excluded.id_hash ELSE residents.id_hash END)"
		"  RETURNING xmax = 0 AS inserted)"
		" SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
		" FROM up",
		3, params);
	if (!res)
		return -1;
	added = atol(PQgetvalue(res, 0, 0));
	updated = atol(PQgetvalue(res, 0, 1));
	PQclear(res);
	if (ctl_commit(ctl, site) < 0)
		return -1;
	if (im->dropped)
		snprintf(ids, sizeof(ids), "%ld dropped (no [site] id_key_file)", im->dropped);
	else
		snprintf(ids, sizeof(ids), "%ld hashed", im->hashed);
	clock_gettime(CLOCK_MONOTONIC, &now);
	printf("imported %s into site %s in %.2f s: %ld row%s; residents: %ld new, %ld updated, "
	       "%ld unchanged; ID numbers: %s\n",
	       im->path, site, (double)now.tv_sec + now.tv_nsec / 1e9 - started, im->rows,
	       im->rows == 1 ? "" : "s", added, updated, im->rows - added - updated, ids);
	return 0;
}

int
ctl_cmd_import_residents(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *site = NULL;
	const struct ctl_opt opts[] = { { "--site", &site, NULL }, { NULL, NULL, NULL } };
	const char *params[1];
	struct residents im = { 0 };
	uint8_t *key = NULL;
	size_t key_len = 0;
	struct timespec t0;
	struct tm tm;
	time_t t;
	double started;
	int ret = CTL_FAIL, err;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	started = (double)t0.tv_sec + t0.tv_nsec / 1e9;
	if (ctl_parse(IMPORT_RESIDENTS, argc, argv, opts, pos, 1, 1) < 0)
		return CTL_USAGE;
	if (!site)
		return tool_usage(IMPORT_RESIDENTS, "--site is required");
	if (ctl_check_id(IMPORT_RESIDENTS, "site", site) < 0)
		return CTL_USAGE;
	im.path = pos[0];
	params[0] = site;
	t = time(NULL);
	gmtime_r(&t, &tm);
	strftime(im.today, sizeof(im.today), "%Y-%m-%d", &tm);
	/* The key first: ID numbers are hashed as their rows are read. */
	if (ctl_open(ctl) < 0)
		goto out;
	if (ctl->id_key_file[0]) {
		err = idhash_key_load(ctl->id_key_file, &key, &key_len);
		if (err == -EINVAL) {
			tool_err("[site] id_key_file %s: the key must be at least %d bytes",
				 ctl->id_key_file, IDHASH_KEY_MIN);
			goto out;
		}
		if (err < 0) {
			tool_err("cannot read [site] id_key_file %s: %s", ctl->id_key_file,
				 strerror(-err));
			goto out;
		}
		im.key = key;
		im.key_len = key_len;
	}
	if (read_residents(&im) < 0)
		goto out;
	if (ctl_begin(ctl) < 0 || ctl_site_exists(ctl, site) <= 0)
		goto out;
	/* Serialized with the site's other imports (the checks hold until
	 * COMMIT). */
	if (ctl_exec(ctl, "locking the site's register",
		     "SELECT pg_advisory_xact_lock(hashtext('cordon_register'), hashtext($1))", 1,
		     params) < 0 ||
	    ctl_exec(ctl, "creating temporary tables",
		     "CREATE TEMPORARY TABLE import_residents (line integer, household text,"
		     " person text, name text, born date, phone text, id_hash text)"
		     " ON COMMIT DROP",
		     0, NULL) < 0 ||
	    copy_in(ctl, "loading residents", "COPY import_residents FROM STDIN", &im.copy) < 0 ||
	    check_in_db(ctl, &im.bad, "checking households",
			"SELECT i.line, 'household ' || i.household || ' is not in the register"
			" of site ' || $1 || ' (import households first)', count(*) OVER ()"
			" FROM import_residents i LEFT JOIN households h"
			" ON h.site = $1 AND h.household = i.household"
			" WHERE h.household IS NULL ORDER BY i.line LIMIT 100",
			site) < 0 ||
	    check_in_db(ctl, &im.bad, "checking ID numbers",
			"SELECT i.line, 'id_number is that of person ' || r.person, count(*) OVER ()"
			" FROM import_residents i JOIN residents r"
			" ON r.site = $1 AND r.id_hash = i.id_hash AND r.person <> i.person"
			" ORDER BY i.line LIMIT 100",
			site) < 0)
		goto out;
	if (im.bad.total)
		goto out;
	if (upsert_residents(ctl, &im, site, started) < 0)
		goto out;
	if (im.dropped)
		tool_err("warning: no [site] id_key_file in %s: %ld ID number%s of %s dropped, "
			 "never stored",
			 ctl->config_path, im.dropped, im.dropped == 1 ? "" : "s", im.path);
	ret = CTL_OK;
out:
	report_print(&im.bad, im.path);
	ctl_rollback(ctl);
	idset_finish(&im.persons);
	idset_finish(&im.ids);
	report_finish(&im.bad);
	free(im.copy.p);
	if (key)
		explicit_bzero(key, key_len);
	free(key);
	return ret;
}
