"""Metrics, tracing and logging: the one place they are defined."""
