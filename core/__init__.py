"""Shared kernel: settings, database, audit chain and crypto helpers. Imports nothing of ours."""
