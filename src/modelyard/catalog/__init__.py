"""Catalog: models, immutable versions, aliases and lineage."""
