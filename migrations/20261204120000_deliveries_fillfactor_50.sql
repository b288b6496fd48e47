-- Issue 17: room for a whole page's processing updates at once. A batch rewrites every
-- delivery of a page in one transaction, so none of the old versions can be pruned before
-- all the new ones are placed: at fill factor 60 a page holds two or three rows of about
-- 1.8 KB, and where it holds three (or a large one) the last new versions do not fit and
-- those updates are not HOT (30 % of them in relay-bench). At 50 a page holds two, and 92–94 %
-- of the updates were HOT (processing's UPDATE 14–19 → 7–8 µs per delivery in the drain). Only
-- pages written from now on are filled to this point.
ALTER TABLE deliveries SET (fillfactor = 50);
