-- Every version of every resource, in write order. `seq` orders type and system history
-- and gives paging a stable cursor.
CREATE TABLE resource_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated TEXT NOT NULL,
    method TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    content TEXT,
    -- The unique key is what stops two racing writers from both creating version N.
    UNIQUE (resource_type, id, version_id)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);

-- The current version of each resource (a tombstone when deleted).
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    content TEXT,
    PRIMARY KEY (resource_type, id)
);

-- Token values of current, live resources (identifier, _id for now), used by conditional
-- create/update. Rows are replaced on every write and removed on delete.
CREATE TABLE resource_tokens (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (resource_type, id, param, system, code)
);
CREATE INDEX resource_tokens_lookup ON resource_tokens (resource_type, param, code, system);
