"""Journal: every fill into TradeNote (Parse REST), and analytics from our own fill ledger."""
