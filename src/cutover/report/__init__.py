"""The run's record: Markdown, self-contained HTML and JSON (N16)."""
