"""Event contracts: the base model, CloudEvents headers, topic names and every event type."""
