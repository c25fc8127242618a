"""Ports for test servers: never from the kernel's ephemeral range, never handed out twice."""

from __future__ import annotations

import socket

from shared.localstack import processes as p


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    low = p._ephemeral_low()
    ports = [p.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(1024 <= port < low for port in ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_returned(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        vacant = probe.getsockname()[1]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        choices = iter([busy, busy, vacant])
        monkeypatch.setattr(p.random, "randint", lambda _low, _high: next(choices))
        assert p.free_port() == vacant
