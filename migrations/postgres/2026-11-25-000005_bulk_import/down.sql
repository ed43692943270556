DROP TABLE bulk_dropped_indexes;
DROP TABLE bulk_import_checkpoints;
