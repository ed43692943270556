DROP INDEX IF EXISTS search_token_text;
CREATE INDEX search_token_text ON search_token (resource_type, param, text, id);
