"""Options: chains and their quotes, choosing contracts from an alert, spreads.

``chain`` is the data (what a feed returns), ``chains`` the short-lived cache the
deciding path and the risk checks read, ``spec`` the alert's ``option`` object,
``select`` the expiry and strike choice, ``spreads`` prices and worst cases of a
combination of legs.
"""
