"""Kairos: strategy jobs from YAML, run on cron inside exchange sessions, posting signed alerts.

Modules: ``jobs`` (schema, loading), ``calendar`` and ``schedule`` (when a job may fire),
``indicators`` and ``strategies`` (what it decides), ``datahub_client`` (bars, quotes,
positions, signed alerts), ``runner`` (the scheduler loop), ``service`` and ``cli``.
"""
