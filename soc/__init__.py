"""Security operations: ingest → parse → normalise (ECS) → enrich → store; later detect, alert, drills."""
