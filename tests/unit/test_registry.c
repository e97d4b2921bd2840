/* Unit tests of the register's packed households and cards (registry.c):
 * what registry_household() and registry_card() return after the register
 * is built, for the shapes the old fixed-size arrays got wrong or that a
 * packed form could: ids of exactly NORM_ID_MAX bytes and longer ones
 * (stored whole, never cut), UTF-8, both flags, the same card id in two
 * sites, sites without cards, entries added out of order, ids that sort
 * between others, duplicates refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static struct registry_snapshot *
snap(void)
{
	struct registry_snapshot *s = registry_snapshot_empty("Asia/Shanghai");

	assert_non_null(s);
	return s;
}

static void
add_hh(struct registry_snapshot *s, const char *site, const char *hh, const char *building,
       int size)
{
	assert_int_equal(registry_snapshot_add_household(s, site, hh, building, "2", "401", size),
			 0);
}

static void
add_card(struct registry_snapshot *s, const char *site, const char *card, const char *hh,
	 int revoked, int extra)
{
	assert_int_equal(registry_snapshot_add_card(s, site, card, hh, revoked, extra), 0);
}

static void
expect_card(const struct registry_snapshot *s, const char *site, const char *card, const char *hh,
	    int revoked, int extra)
{
	struct reg_card c;

	assert_ptr_equal(registry_card(s, site, card, &c), &c);
	assert_string_equal(c.site, site);
	assert_string_equal(c.card, card);
	assert_string_equal(c.household, hh);
	assert_int_equal(c.revoked, revoked);
	assert_int_equal(c.extra, extra);
}

static void
test_fields(void **state)
{
	struct registry_snapshot *s = snap();
	struct reg_household h;

	(void)state;
	add_hh(s, "sunny", "3-2-401", "3", 3);
	add_hh(s, "sunny", "3-2-402", "3", 0);
	add_card(s, "sunny", "C-0412", "3-2-401", 0, 0);
	add_card(s, "sunny", "C-0413", "3-2-401", 1, 0);
	add_card(s, "sunny", "C-0414", "3-2-402", 0, 1);
	add_card(s, "sunny", "C-0415", "3-2-402", 1, 1);
	assert_int_equal(s->nhouseholds, 2);
	assert_int_equal(s->ncards, 4);
	expect_card(s, "sunny", "C-0412", "3-2-401", 0, 0);
	expect_card(s, "sunny", "C-0413", "3-2-401", 1, 0);
	expect_card(s, "sunny", "C-0414", "3-2-402", 0, 1);
	expect_card(s, "sunny", "C-0415", "3-2-402", 1, 1);
	assert_ptr_equal(registry_household(s, "sunny", "3-2-401", &h), &h);
	assert_string_equal(h.site, "sunny");
	assert_string_equal(h.household, "3-2-401");
	assert_string_equal(h.building, "3");
	assert_string_equal(h.unit, "2");
	assert_string_equal(h.room, "401");
	assert_int_equal(h.size, 3);
	assert_non_null(registry_household(s, "sunny", "3-2-402", &h));
	assert_int_equal(h.size, 0);
	/* not registered: NULL, and *ret untouched */
	memset(&h, 0x5a, sizeof(h));
	assert_null(registry_household(s, "sunny", "3-2-403", &h));
	assert_null(registry_household(s, "other", "3-2-401", &h));
	assert_int_equal(h.size, 0x5a5a5a5a);
	registry_snapshot_free(s);
}

/* Ids of exactly NORM_ID_MAX bytes, and longer ones (cards.card has no
 * CHECK): stored whole; a prefix is not the id. */
static void
test_long_ids(void **state)
{
	struct registry_snapshot *s = snap();
	char site[NORM_ID_MAX + 1], hh[NORM_ID_MAX + 1], card[NORM_ID_MAX + 1], longer[101];
	char building[200];
	struct reg_household h;
	struct reg_card c;

	(void)state;
	memset(site, 's', NORM_ID_MAX);
	site[NORM_ID_MAX] = '\0';
	memset(hh, 'h', NORM_ID_MAX);
	hh[NORM_ID_MAX] = '\0';
	memset(card, 'c', NORM_ID_MAX);
	card[NORM_ID_MAX] = '\0';
	memset(longer, 'c', 100);
	longer[100] = '\0';
	memset(building, 'b', sizeof(building) - 1);
	building[sizeof(building) - 1] = '\0';
	add_hh(s, site, hh, building, 50);
	add_card(s, site, card, hh, 0, 1);
	add_card(s, site, longer, hh, 1, 0);
	expect_card(s, site, card, hh, 0, 1);
	expect_card(s, site, longer, hh, 1, 0);
	assert_null(registry_card(s, site, "ccc", &c));
	longer[NORM_ID_MAX + 1] = '\0'; /* 65 bytes: neither */
	assert_null(registry_card(s, site, longer, &c));
	assert_non_null(registry_household(s, site, hh, &h));
	assert_int_equal(strlen(h.building), sizeof(building) - 1);
	assert_int_equal(h.size, 50);
	site[NORM_ID_MAX - 1] = '\0'; /* a shorter site is another site */
	assert_null(registry_card(s, site, card, &c));
	registry_snapshot_free(s);
}

/* UTF-8 in ids and in building, unit and room: bytes as given, never cut
 * inside a character. */
static void
test_utf8(void **state)
{
	struct registry_snapshot *s = snap();
	/* 22 three-byte characters: 66 bytes, over NORM_ID_MAX */
	char name[3 * 22 + 1] = "";
	struct reg_household h;

	(void)state;
	for (int i = 0; i < 22; i++)
		strcat(name, "楼");
	assert_int_equal(registry_snapshot_add_household(s, "阳光小区", "三号楼-2-401", name,
							 "二单元", "四〇一", 4),
			 0);
	add_card(s, "阳光小区", "卡-0001", "三号楼-2-401", 0, 0);
	expect_card(s, "阳光小区", "卡-0001", "三号楼-2-401", 0, 0);
	assert_non_null(registry_household(s, "阳光小区", "三号楼-2-401", &h));
	assert_string_equal(h.building, name);
	assert_string_equal(h.unit, "二单元");
	assert_string_equal(h.room, "四〇一");
	assert_true(registry_site_has_cards(s, "阳光小区"));
	registry_snapshot_free(s);
}

/* The same card id in two sites: two cards, each with its own household
 * and flags; the same household id in two sites likewise. */
static void
test_same_id_two_sites(void **state)
{
	struct registry_snapshot *s = snap();
	struct reg_household h;

	(void)state;
	add_hh(s, "north", "1-1-101", "1", 2);
	add_hh(s, "south", "1-1-101", "9", 5);
	add_hh(s, "south", "1-1-102", "9", 1);
	add_card(s, "north", "C-1", "1-1-101", 0, 0);
	add_card(s, "south", "C-1", "1-1-102", 1, 1);
	expect_card(s, "north", "C-1", "1-1-101", 0, 0);
	expect_card(s, "south", "C-1", "1-1-102", 1, 1);
	assert_non_null(registry_household(s, "north", "1-1-101", &h));
	assert_string_equal(h.building, "1");
	assert_int_equal(h.size, 2);
	assert_non_null(registry_household(s, "south", "1-1-101", &h));
	assert_string_equal(h.building, "9");
	assert_int_equal(h.size, 5);
	registry_snapshot_free(s);
}

/* A site with households and no card, a site with only a revoked card, a
 * site never named, an empty register. */
static void
test_sites_without_cards(void **state)
{
	struct registry_snapshot *s = snap();
	struct reg_card c;

	(void)state;
	assert_false(registry_site_has_cards(s, "a"));
	assert_null(registry_card(s, "a", "C-1", &c));
	add_hh(s, "a", "1-1-101", "1", 1);
	add_hh(s, "c", "1-1-101", "1", 1);
	add_card(s, "c", "C-9", "1-1-101", 1, 0);
	assert_false(registry_site_has_cards(s, "a"));
	assert_false(registry_site_has_cards(s, "b"));
	assert_true(registry_site_has_cards(s, "c"));
	assert_null(registry_card(s, "a", "C-9", &c));
	assert_null(registry_card(s, "b", "C-9", &c));
	expect_card(s, "c", "C-9", "1-1-101", 1, 0);
	registry_snapshot_free(s);
}

/* A card whose household is not registered keeps the id it was given;
 * duplicates are refused and change nothing. */
static void
test_unregistered_household_and_duplicates(void **state)
{
	struct registry_snapshot *s = snap();

	(void)state;
	add_card(s, "x", "C-1", "9-9-999", 0, 0);
	expect_card(s, "x", "C-1", "9-9-999", 0, 0);
	assert_int_equal(registry_snapshot_add_card(s, "x", "C-1", "1-1-101", 1, 1), -EEXIST);
	expect_card(s, "x", "C-1", "9-9-999", 0, 0);
	add_hh(s, "x", "1-1-101", "1", 1);
	assert_int_equal(registry_snapshot_add_household(s, "x", "1-1-101", "2", "2", "2", 2),
			 -EEXIST);
	assert_int_equal(s->ncards, 1);
	assert_int_equal(s->nhouseholds, 1);
	registry_snapshot_free(s);
}

/* 3,000 cards in 30 sites added in a shuffled order: every one found with
 * its own household and flags; ids between them, before the first and
 * after the last are not. */
static void
test_many_shuffled(void **state)
{
	enum { SITES = 30, PER = 100, N = SITES * PER };
	struct registry_snapshot *s = snap();
	unsigned *order = malloc(N * sizeof(*order));
	char site[16], card[32], hh[32];
	struct reg_card c;
	uint32_t x = 12345;

	(void)state;
	assert_non_null(order);
	for (unsigned i = 0; i < N; i++)
		order[i] = i;
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned j, t;

		x = x * 1103515245u + 12345u;
		j = (x >> 8) % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned k = 0; k < N; k++) {
		unsigned i = order[k];

		snprintf(site, sizeof(site), "s%02u", i % SITES);
		snprintf(card, sizeof(card), "C-%05u", i * 2 + 2);
		snprintf(hh, sizeof(hh), "%u-1-%u", i % 7, i / 7);
		if (i % 3 == 0)
			add_hh(s, site, hh, "b", (int)(i % 9));
		add_card(s, site, card, hh, i % 5 == 0, i % 4 == 0);
	}
	free(order);
	assert_int_equal(s->ncards, N);
	assert_int_equal(s->nblocks, SITES);
	for (unsigned i = 0; i < N; i++) {
		snprintf(site, sizeof(site), "s%02u", i % SITES);
		snprintf(card, sizeof(card), "C-%05u", i * 2 + 2);
		snprintf(hh, sizeof(hh), "%u-1-%u", i % 7, i / 7);
		expect_card(s, site, card, hh, i % 5 == 0, i % 4 == 0);
		snprintf(card, sizeof(card), "C-%05u", i * 2 + 1); /* between */
		assert_null(registry_card(s, site, card, &c));
		if (i % 3 == 0) {
			struct reg_household h;

			assert_non_null(registry_household(s, site, hh, &h));
			assert_int_equal(h.size, (int)(i % 9));
		}
	}
	assert_null(registry_card(s, "s00", "C-00000", &c));
	assert_null(registry_card(s, "s00", "C-99999", &c));
	assert_null(registry_card(s, "s", "C-00002", &c));
	assert_null(registry_card(s, "s99", "C-00002", &c));
	assert_true(registry_snapshot_bytes(s) > 0);
	registry_snapshot_free(s);
}

/* Households and cards added one at a time (the path of tests and tools)
 * keep interning: a building, unit or room shared by many households, and
 * an unregistered household shared by many cards, is one string of the
 * block, and the block grows geometrically. Sealing after every add used
 * to drop the intern table (each building stored again) and cut the
 * arrays to size, so that the next add copied the whole block: n adds, n
 * copies. 2,000 households of one 200-byte building must hold that
 * building once (some 400 KB if stored 2,000 times). */
static void
test_adds_intern(void **state)
{
	struct registry_snapshot *s = snap();
	char building[201], hh[32], card[32];
	struct reg_household h0, h;
	struct reg_card c0, c;

	(void)state;
	memset(building, 'B', sizeof(building) - 1);
	building[sizeof(building) - 1] = '\0';
	for (int i = 0; i < 2000; i++) {
		snprintf(hh, sizeof(hh), "H-%05d", i);
		add_hh(s, "x", hh, building, 3);
		snprintf(card, sizeof(card), "C-%05d", i);
		add_card(s, "x", card, "not-registered", 0, 0);
	}
	assert_non_null(registry_household(s, "x", "H-00000", &h0));
	assert_non_null(registry_household(s, "x", "H-01999", &h));
	assert_string_equal(h.building, building);
	assert_ptr_equal(h.building, h0.building);
	assert_ptr_equal(h.unit, h0.unit);
	assert_ptr_equal(h.room, h0.room);
	assert_non_null(registry_card(s, "x", "C-00000", &c0));
	assert_non_null(registry_card(s, "x", "C-01999", &c));
	assert_ptr_equal(c.household, c0.household);
	assert_true(registry_snapshot_bytes(s) < 200 * 1000);
	registry_snapshot_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_long_ids),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_same_id_two_sites),
		cmocka_unit_test(test_sites_without_cards),
		cmocka_unit_test(test_unregistered_household_and_duplicates),
		cmocka_unit_test(test_many_shuffled),
		cmocka_unit_test(test_adds_intern),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
