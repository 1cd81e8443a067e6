"""trader-ops: a self-hosted trading ops stack."""

__version__ = "0.1.0"
