"""Pydantic models shared by every service (the edges of the system)."""
