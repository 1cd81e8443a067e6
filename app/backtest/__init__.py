"""Backtests and alert replays through the live code path (issue 24).

Kairos jobs run with their own ``Kairos`` class, their alerts are decided by the account's
``ExecutionEngine`` (planner, sizing, every risk check) and filled by the paper broker,
all on a simulated clock; only the datahub's HTTP hop is replaced by an in-process client
(``client.py``) that speaks the same contract.
"""
