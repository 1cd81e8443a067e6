"""The tests' shared kit: pollers, HTTP waiters, permissive risk limits."""
