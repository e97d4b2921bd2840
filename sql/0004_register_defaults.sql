-- 0004: a register entry without a value of its own follows cordond's
-- configuration (issue 12, point 8). Until now the schema and cordonctl
-- wrote the built-in defaults into every row ('Asia/Shanghai', 4 h, 12 h),
-- so [site] timezone, [rules] disinfection_interval and [rules]
-- check_interval had no effect on anything cordonctl created, and a
-- SIGHUP could not change them. NULL now means "the configured default":
--   sites.timezone              -> [site] timezone
--   zones.interval_s            -> [rules] disinfection_interval
--   isolation_orders.check_interval_s -> [rules] check_interval
-- Rows written before keep their values: nobody can tell now whether they
-- were given on purpose.

ALTER TABLE sites ALTER COLUMN timezone DROP NOT NULL,
                  ALTER COLUMN timezone DROP DEFAULT;
ALTER TABLE zones ALTER COLUMN interval_s DROP NOT NULL,
                  ALTER COLUMN interval_s DROP DEFAULT;
ALTER TABLE isolation_orders ALTER COLUMN check_interval_s DROP NOT NULL,
                             ALTER COLUMN check_interval_s DROP DEFAULT,
                             ADD CONSTRAINT isolation_orders_check_interval_s_check
                                 CHECK (check_interval_s > 0) NOT VALID;
