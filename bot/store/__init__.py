"""Durable state: SQLite under state_dir."""
