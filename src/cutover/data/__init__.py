"""Data (N5–N7): export per insurance line, hand-off to the drop, reconciliation."""
