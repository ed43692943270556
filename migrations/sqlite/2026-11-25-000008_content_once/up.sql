-- A resource's content is kept once, in its version row (`resource_versions`); `resources` keeps
-- the current version's number and reads join to it. The copy here made every write carry each
-- resource twice: a fifth of the database after a bulk import.
ALTER TABLE resources DROP COLUMN content;
