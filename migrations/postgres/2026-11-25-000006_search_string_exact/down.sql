CREATE INDEX search_string_exact ON search_string (resource_type, param, exact, id);
