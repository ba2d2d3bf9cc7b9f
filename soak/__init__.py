"""The soak: synthetic services send through the observatory client while the pipeline's stores fail in turn.

`python -m soak` (long, `make soak`) or `python -m soak --short` (inside `make test`). It runs on its own
PostgreSQL cluster, Redis and Elasticsearch (instances.py), never the developer's default ones, and ends
with a reconciliation of the clients' 202s against PostgreSQL, the rollups and Elasticsearch.
"""
