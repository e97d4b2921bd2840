-- 0005: the aggregate alert (issue 13, point 5). A site holds at most
-- [rules] max_open_alerts open alerts of one kind; the subjects past it
-- fold into one aggregate alert of that site and kind, subject '*'. It
-- carries how many distinct subjects were folded into it (exact up to 256,
-- then an estimate within a few per cent) and the first few of them.
-- NULL on every other alert.

ALTER TABLE alerts ADD COLUMN distinct_subjects integer,
                   ADD COLUMN sample text;
