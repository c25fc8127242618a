"""IntercoTOUR replays service."""
