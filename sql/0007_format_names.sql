-- 0007: the names of the gate terminal formats have one owner, the format
-- table (meson.build's gate_formats, src/normalize.c), no longer a copy in
-- a CHECK of 0002 (issue 15): a new vendor format needs no migration.
-- cordonctl gate add takes only the table's names; a name written by hand
-- that the table does not have reads as `auto` (src/registry.c), and
-- test_formats checks that docs/topics.md names the table's formats.
ALTER TABLE gates DROP CONSTRAINT IF EXISTS gates_format_check;
