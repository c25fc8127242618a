"""Shared event platform for the IntercoTOUR services."""
