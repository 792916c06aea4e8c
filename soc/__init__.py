"""Security operations: ingest → parse → normalise (ECS) → enrich → store; later detect, alert, drills."""

from soc import native

native.install()  # a compiled module older than its source is imported from the source
