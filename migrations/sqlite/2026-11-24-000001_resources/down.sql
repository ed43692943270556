DROP TABLE resource_tokens;
DROP TABLE resources;
DROP TABLE resource_versions;
