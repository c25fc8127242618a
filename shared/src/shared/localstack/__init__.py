"""Local development stack helpers (processes the services need in dev and tests)."""
