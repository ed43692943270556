-- The owner indexes find a resource's rows when it is rewritten or deleted. Keyed by id first,
-- they sort on what tells rows apart instead of comparing the same type name first in every
-- comparison: at a million providers search_string's was built in 18.2 s instead of 24.6 s
-- (SQLite). The type stays in the key so the planner sees both equalities (on `id` alone SQLite
-- picked search_string_norm for `resource_type = ?` and scanned a whole type).
DROP INDEX IF EXISTS search_token_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_token_owner';
CREATE INDEX search_token_owner ON search_token (id, resource_type);
DROP INDEX IF EXISTS search_string_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_string_owner';
CREATE INDEX search_string_owner ON search_string (id, resource_type);
DROP INDEX IF EXISTS search_reference_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_reference_owner';
CREATE INDEX search_reference_owner ON search_reference (id, resource_type);
DROP INDEX IF EXISTS search_date_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_date_owner';
CREATE INDEX search_date_owner ON search_date (id, resource_type);
DROP INDEX IF EXISTS search_uri_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_uri_owner';
CREATE INDEX search_uri_owner ON search_uri (id, resource_type);
DROP INDEX IF EXISTS search_number_owner;
DELETE FROM bulk_dropped_indexes WHERE name = 'search_number_owner';
CREATE INDEX search_number_owner ON search_number (id, resource_type);
