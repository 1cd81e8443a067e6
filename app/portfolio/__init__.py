"""The book of record: positions, lots, cash and P&L per account (read by risk, written by execution)."""
