DELETE FROM bulk_dropped_indexes;

CREATE TABLE search_token_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    text TEXT NOT NULL
);
INSERT INTO search_token_by_name (resource_type, id, param, system, code, text)
SELECT p.resource_type, s.id, p.code, s.system, s.code, s.text FROM search_token s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_token;
ALTER TABLE search_token_by_name RENAME TO search_token;
CREATE INDEX search_token_code ON search_token (resource_type, param, code, system, id);
CREATE INDEX search_token_text ON search_token (resource_type, param, text, id) WHERE text <> '';
CREATE INDEX search_token_owner ON search_token (id, resource_type);

CREATE TABLE search_string_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    norm TEXT NOT NULL,
    exact TEXT NOT NULL
);
INSERT INTO search_string_by_name (resource_type, id, param, norm, exact)
SELECT p.resource_type, s.id, p.code, s.norm, s.exact FROM search_string s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_string;
ALTER TABLE search_string_by_name RENAME TO search_string;
CREATE INDEX search_string_norm ON search_string (resource_type, param, norm, id);
CREATE INDEX search_string_owner ON search_string (id, resource_type);

CREATE TABLE search_reference_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    url TEXT NOT NULL
);
INSERT INTO search_reference_by_name (resource_type, id, param, target_type, target_id, url)
SELECT p.resource_type, s.id, p.code, s.target_type, s.target_id, s.url FROM search_reference s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_reference;
ALTER TABLE search_reference_by_name RENAME TO search_reference;
CREATE INDEX search_reference_target ON search_reference (resource_type, param, target_type, target_id, id);
CREATE INDEX search_reference_reverse ON search_reference (target_type, target_id, resource_type, param);
CREATE INDEX search_reference_url ON search_reference (resource_type, param, url);
CREATE INDEX search_reference_owner ON search_reference (id, resource_type);

CREATE TABLE search_date_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    low TEXT NOT NULL,
    high TEXT NOT NULL
);
INSERT INTO search_date_by_name (resource_type, id, param, low, high)
SELECT p.resource_type, s.id, p.code, s.low, s.high FROM search_date s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_date;
ALTER TABLE search_date_by_name RENAME TO search_date;
CREATE INDEX search_date_low ON search_date (resource_type, param, low, high, id);
CREATE INDEX search_date_high ON search_date (resource_type, param, high, id);
CREATE INDEX search_date_owner ON search_date (id, resource_type);

CREATE TABLE search_uri_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    uri TEXT NOT NULL
);
INSERT INTO search_uri_by_name (resource_type, id, param, uri)
SELECT p.resource_type, s.id, p.code, s.uri FROM search_uri s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_uri;
ALTER TABLE search_uri_by_name RENAME TO search_uri;
CREATE INDEX search_uri_value ON search_uri (resource_type, param, uri, id);
CREATE INDEX search_uri_owner ON search_uri (id, resource_type);

CREATE TABLE search_number_by_name (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL
);
INSERT INTO search_number_by_name (resource_type, id, param, value, system, code)
SELECT p.resource_type, s.id, p.code, s.value, s.system, s.code FROM search_number s JOIN search_params p ON p.param_id = s.param_id;
DROP TABLE search_number;
ALTER TABLE search_number_by_name RENAME TO search_number;
CREATE INDEX search_number_value ON search_number (resource_type, param, value, id);
CREATE INDEX search_number_owner ON search_number (id, resource_type);

DROP TABLE search_params;
