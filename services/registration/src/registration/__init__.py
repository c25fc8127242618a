"""IntercoTOUR registration service."""
