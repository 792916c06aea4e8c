"""Benchmarks (issue 3): a generated SOC log corpus and the ingest measurements run by ``invoke bench``.

Speed targets live here, never in the unit tests.
"""
