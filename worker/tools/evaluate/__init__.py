"""Prequential (test-then-train) evaluation of the Engine against peers: `recstream eval`."""
