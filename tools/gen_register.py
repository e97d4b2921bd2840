#!/usr/bin/env python3
"""Generates the household register CSV of the reference compound (SPEC):
52 buildings, 3,427 households, 10,803 residents (as household sizes),
1-2 cards `C-xxxxx` per household, 11-digit phones. The same --seed always
gives the same file, byte for byte. A second card stands for a carer's
(one card a household is the rule): the CSV has no column to mark it extra,
so an import leaves it ordinary; `cordon-sim register --sql` writes the SQL
that marks them (extra, reason 'carer').

usage: gen_register.py [--seed N] [-o FILE] [--buildings 52] [--households 3427]
                       [--residents 10803]

Household ids are BUILDING-UNIT-ROOM, e.g. 3-2-401 (building 3, unit 2,
floor 4, room 01). Writes to stdout unless -o is given; prints a summary
to stderr.
"""

import argparse
import csv
import random
import sys

HEADER = ["household", "building", "unit", "room", "size", "phone", "cards"]

# Share of households by size (1 to 6 people), then nudged to the exact total.
SIZE_WEIGHTS = [0.15, 0.25, 0.27, 0.19, 0.09, 0.05]
PHONE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151",
                  "152", "158", "159", "180", "181", "186", "187", "188", "189"]


def households_per_building(rng, buildings, households):
    base, extra = divmod(households, buildings)
    counts = [base + 1] * extra + [base] * (buildings - extra)
    rng.shuffle(counts)
    return counts


def layout(rng, building, count):
    """Yield (household, unit, room) for `count` households of one building:
    2-4 units, 2 rooms per unit and floor, filled floor by floor."""
    units = rng.randint(2, 4)
    floor = 1
    made = 0
    while True:
        for unit in range(1, units + 1):
            for r in (1, 2):
                if made == count:
                    return
                room = "%d%02d" % (floor, r)
                made += 1
                yield "%d-%d-%s" % (building, unit, room), str(unit), room
        floor += 1


def sizes(rng, n, total):
    """n household sizes (1..8) summing to exactly `total`."""
    if not n <= total <= 8 * n:
        raise SystemExit("gen_register: %d residents cannot fill %d households" % (total, n))
    out = rng.choices(range(1, len(SIZE_WEIGHTS) + 1), weights=SIZE_WEIGHTS, k=n)
    diff = total - sum(out)
    while diff:
        i = rng.randrange(n)
        if diff > 0 and out[i] < 8:
            out[i] += 1
            diff -= 1
        elif diff < 0 and out[i] > 1:
            out[i] -= 1
            diff += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", help="output file (default stdout)")
    ap.add_argument("--buildings", type=int, default=52)
    ap.add_argument("--households", type=int, default=3427)
    ap.add_argument("--residents", type=int, default=10803)
    args = ap.parse_args()
    if args.households > 99999 // 2:
        raise SystemExit("gen_register: at most %d households (card ids are C-xxxxx)" % (99999 // 2))

    rng = random.Random(args.seed)
    rows = []
    for b, count in enumerate(households_per_building(rng, args.buildings, args.households), 1):
        for hh, unit, room in layout(rng, b, count):
            rows.append([hh, str(b), unit, room])
    hh_sizes = sizes(rng, len(rows), args.residents)
    card_numbers = iter(rng.sample(range(1, 100000), 2 * len(rows)))
    ncards = 0
    for row, size in zip(rows, hh_sizes):
        phone = rng.choice(PHONE_PREFIXES) + "%08d" % rng.randrange(10 ** 8)
        # one card per household, a second for most households of 3 or more
        n = 2 if size >= 3 and rng.random() < 0.7 else 1
        cards = ";".join("C-%05d" % next(card_numbers) for _ in range(n))
        ncards += n
        row += [str(size), phone, cards]

    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)
    finally:
        if args.output:
            out.close()
    print("gen_register: seed %d: %d buildings, %d households, %d residents, %d cards"
          % (args.seed, args.buildings, len(rows), sum(hh_sizes), ncards), file=sys.stderr)


if __name__ == "__main__":
    main()
