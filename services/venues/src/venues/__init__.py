"""IntercoTOUR venues service."""
