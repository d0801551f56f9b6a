"""The plan: YAML with line numbers → pydantic model → lint."""
