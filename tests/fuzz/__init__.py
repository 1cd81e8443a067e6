"""Hostile input: schemathesis against the datahub's OpenAPI, hypothesis on every parser."""
