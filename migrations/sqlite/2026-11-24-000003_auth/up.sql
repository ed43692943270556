-- Backend clients allowed to ask for access tokens (SMART Backend Services). Exactly one of
-- public_key_pem and jwks_url says how the client's assertions are verified.
CREATE TABLE auth_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    key_algorithm TEXT,
    public_key_pem TEXT,
    jwks_url TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CHECK ((public_key_pem IS NULL) <> (jwks_url IS NULL))
);

-- Every client assertion accepted, until it has expired: the primary key is what refuses a
-- replayed `jti`, in every process sharing the database.
CREATE TABLE auth_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_assertions_expiry ON auth_assertions (expires_at);

-- Access tokens issued, kept only as the SHA-256 of the token: a leaked table grants nothing.
CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES auth_clients (id),
    scopes TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);
