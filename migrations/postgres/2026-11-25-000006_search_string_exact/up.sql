-- `:exact` string searches use search_string_norm (an exact match is also a match of the
-- normalized forms, then `exact` is compared): this index was redundant and the largest one a
-- bulk import had to build.
DROP INDEX IF EXISTS search_string_exact;
-- An interrupted bulk import must not recreate it.
DELETE FROM bulk_dropped_indexes WHERE name = 'search_string_exact';
