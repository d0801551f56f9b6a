"""The executor and what it stands on: journal, lock, clock, notifications."""
