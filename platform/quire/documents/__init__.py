"""Documents, pages, lines and their versions; ingest, storage keys and exports."""
