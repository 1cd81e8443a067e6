"""The datahub service: market data, webhook intake, execution and admin API."""
