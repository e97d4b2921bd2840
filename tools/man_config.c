/* man_config.c - writes cordond.conf(5) from man/cordond.conf.5.in and the
 * key table, config_keys[] of src/config.c, at build time (meson target
 * cordond.conf.5), so the page cannot drift from what cordond parses.
 *
 *   man_config IN OUT
 *
 * Every line of IN is copied to OUT, except a line
 *
 *   .\" @KEYS section@
 *
 * which becomes an mdoc(7) tag list of that section's keys in table order:
 * the name and the type of value, the key's doc, the default, the range
 * (durations, sizes, integers) and whether SIGHUP applies a change. Every
 * section of the table must have exactly one such line and no line may name
 * a section the table lacks: otherwise the tool says which and exits 1
 * without leaving OUT behind, so a new section cannot go undocumented. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_keys.h"

#define MARKER ".\\\" @KEYS "
#define MAX_SECTIONS 32
#define WRAP 72 /* columns of a text line; mandoc -Tlint asks for at most 80 */

/* The value's syntax after "key =", as mdoc(7) macros. */
static const char *
type_macro(enum config_key_type t)
{
	switch (t) {
	case KEY_STRING: return "Ar string";
	case KEY_URIS: return "Ar uri Op , Ns Ar uri ...";
	case KEY_TOPIC: return "Ar level";
	case KEY_TIMEZONE: return "Ar zone";
	case KEY_DURATION: return "Ar duration";
	case KEY_SIZE: return "Ar size";
	case KEY_INT: return "Ar number";
	case KEY_TEMP: return "Ar celsius";
	case KEY_SYNC: return "Cm off | interval | always";
	case KEY_LEVEL: return "Cm error | warning | notice | info | debug";
	case KEY_TIME_OF_DAY: return "Ar HH:MM";
	case KEY_BOOL: return "Cm yes | no";
	}
	return "Ar value";
}

/* A duration in milliseconds in the largest unit that divides it
 * ("90s", "1h", "100ms"), as config.c prints them. */
static void
format_ms(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 } };

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, ms == 0 ? "0" : "%lldms", (long long)ms);
}

/* A size in bytes in the largest binary unit that divides it ("64KiB"). */
static void
format_bytes(int64_t b, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = { { "TiB", 1099511627776LL },
		      { "GiB", 1073741824 },
		      { "MiB", 1048576 },
		      { "KiB", 1024 } };

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (b != 0 && b % units[i].mult == 0) {
			snprintf(buf, len, "%lld%s", (long long)(b / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%lld", (long long)b);
}

/* A bound of k's range as text, in the key's own unit. */
static void
format_bound(const struct config_key *k, int64_t v, char *buf, size_t len)
{
	if (k->type == KEY_DURATION)
		format_ms(v, buf, len);
	else if (k->type == KEY_SIZE)
		format_bytes(v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

/* Writes one roff text line of at most WRAP columns where the words allow,
 * breaking at blanks; a line never starts with a control character. */
static void
write_wrapped(FILE *out, const char *text, size_t len)
{
	size_t col = 0;

	while (len > 0) {
		size_t word = 0;

		while (word < len && text[word] != ' ')
			word++;
		if (col > 0 && col + 1 + word > WRAP) {
			fputc('\n', out);
			col = 0;
		} else if (col > 0) {
			fputc(' ', out);
			col++;
		}
		if (col == 0 && (text[0] == '.' || text[0] == '\''))
			fputs("\\&", out);
		fwrite(text, 1, word, out);
		col += word;
		text += word;
		len -= word;
		while (len > 0 && text[0] == ' ') {
			text++;
			len--;
		}
	}
	fputc('\n', out);
}

/* Writes a key's doc as roff text: the first letter capitalized, a full
 * stop at the end, a new line for each sentence (mdoc(7): "new sentence,
 * new line"), lines wrapped, backslashes escaped and "--" as two minus
 * signs. Returns 0 or -ENOMEM. */
static int
write_doc(FILE *out, const char *doc)
{
	size_t n = strlen(doc), len = 0;
	char *buf = malloc(2 * n + 2), *sentence;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (doc[i] == '\\') {
			buf[len++] = '\\';
			buf[len++] = 'e';
		} else if (doc[i] == '-' && doc[i + 1] == '-') {
			memcpy(buf + len, "\\-\\-", 4);
			len += 4;
			i++;
		} else {
			buf[len++] = i == 0 ? (char)toupper((unsigned char)doc[i]) : doc[i];
		}
	}
	if (n == 0 || !strchr(".!?", doc[n - 1]))
		buf[len++] = '.';
	buf[len] = '\0';
	sentence = buf;
	for (;;) {
		char *end = strstr(sentence, ". ");

		if (!end) {
			write_wrapped(out, sentence, strlen(sentence));
			break;
		}
		write_wrapped(out, sentence, (size_t)(end + 1 - sentence));
		sentence = end + 2;
	}
	free(buf);
	return 0;
}

/* Writes one key as an item of a tag list: 0 or -ENOMEM. */
static int
write_key(FILE *out, const struct config_key *k)
{
	char lo[32], hi[32];

	fprintf(out, ".It Ic %s No = %s\n", k->name, type_macro(k->type));
	if (write_doc(out, k->doc) < 0)
		return -ENOMEM;
	if (k->default_value[0])
		fprintf(out, "The default is\n.Ql %s .\n", k->default_value);
	else
		fputs("The default is empty.\n", out);
	if ((k->type == KEY_DURATION || k->type == KEY_SIZE || k->type == KEY_INT) &&
	    (k->min != 0 || k->max != 0)) {
		format_bound(k, k->min, lo, sizeof(lo));
		if (k->max == INT64_MAX) {
			fprintf(out, "At least %s.\n", lo);
		} else {
			format_bound(k, k->max, hi, sizeof(hi));
			fprintf(out, "From %s to %s.\n", lo, hi);
		}
	}
	if (k->reloadable)
		fputs(".Dv SIGHUP\napplies a change.\n", out);
	else
		fputs("A change takes effect at the next start.\n", out);
	return 0;
}

/* Writes the keys of `section` as a tag list: 0 or -ENOMEM. */
static int
write_section(FILE *out, const char *section)
{
	fputs(".Bl -tag -width Ds\n", out);
	for (const struct config_key *k = config_keys; k->section; k++)
		if (strcmp(k->section, section) == 0 && write_key(out, k) < 0)
			return -ENOMEM;
	fputs(".El\n", out);
	return 0;
}

/* The sections of the table, in table order, each once. Returns how many
 * (at most max). */
static size_t
table_sections(const char **ret, size_t max)
{
	size_t n = 0;

	for (const struct config_key *k = config_keys; k->section; k++) {
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(ret[i], k->section) == 0)
				break;
		if (i == n && n < max)
			ret[n++] = k->section;
	}
	return n;
}

/* Copies in to out, expanding the markers; 0, or -1 after saying why. */
static int
expand(FILE *in, FILE *out, const char *in_path)
{
	const char *sections[MAX_SECTIONS];
	int used[MAX_SECTIONS] = { 0 };
	size_t nsections = table_sections(sections, MAX_SECTIONS);
	char line[4096];
	int lineno = 0, errors = 0;

	while (fgets(line, sizeof(line), in)) {
		size_t len = strlen(line);
		char name[64];
		size_t i;

		lineno++;
		if (strncmp(line, MARKER, strlen(MARKER)) != 0) {
			fputs(line, out);
			continue;
		}
		if (sscanf(line + strlen(MARKER), "%63[a-z_]@", name) != 1 ||
		    line[len - 1] != '\n' || line[len - 2] != '@') {
			fprintf(stderr, "%s:%d: bad marker (want .\\\" @KEYS section@)\n", in_path,
				lineno);
			errors++;
			continue;
		}
		for (i = 0; i < nsections; i++)
			if (strcmp(sections[i], name) == 0)
				break;
		if (i == nsections) {
			fprintf(stderr, "%s:%d: the key table has no section [%s]\n", in_path,
				lineno, name);
			errors++;
		} else if (used[i]++) {
			fprintf(stderr, "%s:%d: [%s] listed twice\n", in_path, lineno, name);
			errors++;
		} else if (write_section(out, name) < 0) {
			fprintf(stderr, "man_config: out of memory\n");
			return -1;
		}
	}
	for (size_t i = 0; i < nsections; i++) {
		if (!used[i]) {
			fprintf(stderr,
				"%s: no line '.\\\" @KEYS %s@': section [%s] of the key table"
				" (src/config.c) is not in the page\n",
				in_path, sections[i], sections[i]);
			errors++;
		}
	}
	return errors ? -1 : 0;
}

int
main(int argc, char **argv)
{
	FILE *in, *out;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: man_config IN OUT\n");
		return 2;
	}
	in = fopen(argv[1], "r");
	if (!in) {
		fprintf(stderr, "man_config: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	out = fopen(argv[2], "w");
	if (!out) {
		fprintf(stderr, "man_config: %s: %s\n", argv[2], strerror(errno));
		fclose(in);
		return 1;
	}
	rc = expand(in, out, argv[1]);
	fclose(in);
	if (fclose(out) != 0 && rc == 0) {
		fprintf(stderr, "man_config: %s: %s\n", argv[2], strerror(errno));
		rc = -1;
	}
	if (rc < 0) {
		unlink(argv[2]);
		return 1;
	}
	return 0;
}
