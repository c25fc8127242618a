"""Kafka side of the platform: broker factory, outbox relay, inbox, consumer error policy, leases."""
