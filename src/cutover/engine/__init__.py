"""The engine: the executor's run loop, the session every verb stands on, the step kinds,
confirm/override and the way back; the journal, lock, clock and notifications under them."""
