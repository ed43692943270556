-- Where each bulk import (e.g. nppes:npidata_pfile_20050523-20251109.csv) got to: written in the
-- transaction of the batch it follows, so after a crash the import resumes exactly there.
-- updated_at is Unix milliseconds.
CREATE TABLE bulk_import_checkpoints (
    name TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Search index definitions a first bulk import dropped to load faster (BulkWriter::begin_bulk).
-- Dropped and recorded in one transaction; recreated and forgotten in one transaction by
-- finish_bulk, so an import that crashed in between still knows what to recreate.
CREATE TABLE bulk_dropped_indexes (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
