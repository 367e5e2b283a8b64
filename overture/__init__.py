"""Overture Maps context per chip: sources, DuckDB with spatial offline, the batched query, facts and tags."""
