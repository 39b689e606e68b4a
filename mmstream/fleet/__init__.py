"""The fleet's memory: every device's events in PostgreSQL (docs/fleet.md).

`pg_schema` creates and migrates the tables (partitioned by day), `pg_store` writes batches
idempotently, `collector` is `mmstream collect` (MQTT shared subscription -> PostgreSQL), and
`pg_search` answers the history's one query interface (mmstream/history/query.py) from it.
"""
