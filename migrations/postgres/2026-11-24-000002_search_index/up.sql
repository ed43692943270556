-- PostgreSQL: string columns use the "C" collation so that prefix searches, written as ranges
-- (norm >= 'abc' AND norm < 'abd'), match exactly the strings that start with the prefix.
-- Search index: one table per search parameter type, filled on every write from the
-- SearchParameter expressions (src/search/index.rs) and rebuilt by `providercard reindex`.
-- Rows exist only for the current, live version of a resource.
DROP TABLE resource_tokens;

CREATE TABLE search_token (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    -- display / text, normalised, for :text
    text TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_token_code ON search_token (resource_type, param, code, system, id);
CREATE INDEX search_token_text ON search_token (resource_type, param, text, id);
CREATE INDEX search_token_owner ON search_token (resource_type, id);

CREATE TABLE search_string (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    -- lower-cased, accents removed: what default and :contains searches compare
    norm TEXT COLLATE "C" NOT NULL,
    -- as written: what :exact compares
    exact TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_string_norm ON search_string (resource_type, param, norm, id);
CREATE INDEX search_string_exact ON search_string (resource_type, param, exact, id);
CREATE INDEX search_string_owner ON search_string (resource_type, id);

CREATE TABLE search_reference (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    -- the reference as written (absolute URLs, canonicals)
    url TEXT NOT NULL
);
CREATE INDEX search_reference_target ON search_reference (resource_type, param, target_type, target_id, id);
CREATE INDEX search_reference_reverse ON search_reference (target_type, target_id, resource_type, param);
CREATE INDEX search_reference_url ON search_reference (resource_type, param, url);
CREATE INDEX search_reference_owner ON search_reference (resource_type, id);

CREATE TABLE search_date (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    -- the instant range the value covers, inclusive, as fixed-width UTC text
    low TEXT NOT NULL,
    high TEXT NOT NULL
);
CREATE INDEX search_date_low ON search_date (resource_type, param, low, high, id);
CREATE INDEX search_date_high ON search_date (resource_type, param, high, id);
CREATE INDEX search_date_owner ON search_date (resource_type, id);

CREATE TABLE search_uri (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    uri TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (resource_type, param, uri, id);
CREATE INDEX search_uri_owner ON search_uri (resource_type, id);

CREATE TABLE search_number (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE INDEX search_number_value ON search_number (resource_type, param, value, id);
CREATE INDEX search_number_owner ON search_number (resource_type, id);

CREATE INDEX resources_type_updated ON resources (resource_type, last_updated, id);
