"""IntercoTOUR portal service."""
