"""Helpers shared by the benchmarks: local infrastructure on free ports, percentiles, the JSON last line."""

from __future__ import annotations

import json
import shlex
import statistics
import sys
from contextlib import contextmanager
from collections.abc import Iterator

from shared.testing.infra import LocalInfra, start_infra


@contextmanager
def infrastructure(kafka: str | None, mongo: str | None) -> Iterator[tuple[str, str]]:
    """Use the given broker/database, or start both on free ports for this run only."""
    if kafka and mongo:
        yield kafka, mongo
        return
    infra: LocalInfra = start_infra()
    try:
        yield kafka or infra.kafka_bootstrap, mongo or infra.mongo_url
    finally:
        infra.stop()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1], *sys.argv])


def print_result(figures: dict) -> None:
    """Every benchmark ends with one line of JSON holding its figures."""
    print(json.dumps(figures), flush=True)
