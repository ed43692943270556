DROP TABLE bulk_import_checkpoints;
