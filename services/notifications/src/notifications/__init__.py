"""IntercoTOUR notifications service."""
