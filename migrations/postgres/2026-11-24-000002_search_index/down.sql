DROP INDEX resources_type_updated;
DROP TABLE search_number;
DROP TABLE search_uri;
DROP TABLE search_date;
DROP TABLE search_reference;
DROP TABLE search_string;
DROP TABLE search_token;
CREATE TABLE resource_tokens (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, param, system, code)
);
CREATE INDEX resource_tokens_lookup ON resource_tokens (resource_type, param, code, system);
