ALTER TABLE resources ADD COLUMN content TEXT;
UPDATE resources SET content = (
    SELECT v.content FROM resource_versions v
    WHERE v.resource_type = resources.resource_type AND v.id = resources.id AND v.version_id = resources.version_id
);
