"""Broker connectors behind one protocol (``app.brokers.base.Broker``)."""
