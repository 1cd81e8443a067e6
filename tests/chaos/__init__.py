"""Fault injection: processes killed, Redis restarted, a slow and failing broker, clocks.

Short by default (part of ``make test``); ``CHAOS_LONG=1`` (``make chaos``) runs the
same scenarios longer, with more load and more rounds.
"""
