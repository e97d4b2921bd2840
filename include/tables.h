/* tables.h - which table each event type goes to, and its row as text */
#ifndef CORDON_TABLES_H
#define CORDON_TABLES_H

#include "normalize.h"

#define TABLE_MAX_COLS 14

struct table_desc {
	enum event_type type;
	const char *table;   /* e.g. "gate_events"; staging: "stage_" + table */
	const char *columns; /* the column list that table_row() fills */
	int ncols;
	/* Statement that moves the staging rows into the table (and what
	 * follows from them), idempotent by event_key; a row whose key holds
	 * other content (a device that reused a record id) goes in under
	 * "<key>~<12 hex digits of its content hash>", with what follows
	 * from that (event_keys_reused, alerts.event_key). Returns one row
	 * per row stored under a derived key: that key. */
	const char *insert_sql;
	/* The same for one row: parameters $1..$ncols. */
	const char *insert_one_sql;
	/* Rows may be COPYed straight into the table (nothing follows from
	 * them, unlike a hotline step): the fast path when none is there yet. */
	int direct;
};

/* A text[] literal of a comma-separated list of at most NORM_TEXT_MAX
 * bytes: braces, and per byte at most 3 ('","' for a comma, '\\"' for a
 * quote) plus the outer quotes. Sized so that no list is ever cut. */
#define TABLE_LIST_MAX (3 * NORM_TEXT_MAX + 5)

/* One row's text values (NULL for SQL NULL) and their storage. */
struct table_row {
	const char *v[TABLE_MAX_COLS];
	char ts[40], rx[40], due[40], temp[16], flags[64];
	char hash[2 * NORM_HASH_LEN + 3]; /* content_hash as bytea text: \\x + hex */
	char list[TABLE_LIST_MAX];	  /* a text[] literal */
};

/* The descriptor of `type`, or NULL. */
const struct table_desc *tables_for(enum event_type type);
/* All descriptors, in a fixed order; *ret_n of them. */
const struct table_desc *tables_all(size_t *ret_n);
/* Fills `row` with the values of `ev` in its table's column order (the
 * last column is content_hash, from ev->content_hash). */
void tables_row(const struct event *ev, struct table_row *row);

/* The hash of what event `ev` says: XXH3-128 (canonical byte order) of a
 * fixed binary serialisation of the fields its row holds, except those
 * that differ between two deliveries of one message: the event key, the
 * receive time, the device time when there was none (it is then the
 * receive time), and the clock_skew flag (it compares the two). Equal for
 * every delivery of one reading, through any envelope; different when a
 * device sends other content under a record id it used before. Stored in
 * the content_hash columns (sql/0006): do not change what goes in without
 * a migration, or redeliveries across the upgrade look like reused ids. */
void tables_content_hash(const struct event *ev, uint8_t ret[NORM_HASH_LEN]);

#endif
