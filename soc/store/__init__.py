"""Event stores behind one interface: embedded SQLite (default) and Elasticsearch/OpenSearch."""
