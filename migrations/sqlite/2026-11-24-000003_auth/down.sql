DROP TABLE auth_tokens;
DROP TABLE auth_assertions;
DROP TABLE auth_clients;
