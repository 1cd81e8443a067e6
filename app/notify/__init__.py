"""Trade notifications: fills, risk denials, kill-switch and breaker changes, unresolved
executions, coalesced and sent to the trader's channels (apprise) by a background worker."""
