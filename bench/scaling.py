"""Sign-up throughput with 1 and then 2 instances of the registration service.

Starts Tansu and SecantusDB on free ports and registration instances
(``python -m registration.main``, same database, same consumer group), opens
``--stops`` stops by publishing venues events, then sends ``--n`` sign-ups at
``--concurrency`` spread round-robin over the stops and over the instances
(as a load balancer would): first with one instance, then with two. For each run it
reports sign-ups/s, p50/p99 and, as the profile, the CPU seconds each process spent
per sign-up (registration instances vs SecantusDB vs Tansu, from /proc), which says
which of the service or the database is the bottleneck. ``--cprofile`` then runs a
third load against one instance under cProfile and prints its top functions.

    .venv/bin/python bench/scaling.py --n 1500 --concurrency 32 --stops 9

The last line is JSON: one_per_s, one_p99_ms, two_per_s, two_p99_ms, ratio (+ the CPU split).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import shlex
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared.contracts.venues import StopRegistrationOpenedV1
from shared.localstack import processes as p

from registration.samples import publish, stop_snapshot

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def person(run: str, i: int) -> dict[str, object]:
    return {"email": f"scale.{run}.{i}@example.org", "first_name": "Bench", "last_name": f"Person {i}",
            "organisation": "IntercoTOUR", "profile": "other",
            "consents": {"contact": True, "photo": False, "recording": False}}


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.kafka_port, self.mongo_port = p.free_port(), p.free_port()
        self.kafka = p.tansu(self.kafka_port, workdir / "kafka.log")
        self.mongo = p.secantus(self.mongo_port, ":memory:", workdir / "mongo.log")
        self.instances: list[tuple[p.ManagedProcess, str]] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start_infra(self) -> None:
        self.kafka.start()
        self.mongo.start()
        p.wait_for_port("127.0.0.1", self.kafka_port, 30, self.kafka.proc)
        p.wait_for_mongo(self.mongo_port, 60, self.mongo)

    def start_instance(self, profile_to: Path | None = None) -> tuple[p.ManagedProcess, str]:
        port = p.free_port()
        env = {"REGISTRATION_HTTP_PORT": str(port), "REGISTRATION_MONGO_URL": p.mongo_url(self.mongo_port),
               "REGISTRATION_KAFKA_BOOTSTRAP": self.bootstrap, "REGISTRATION_LOG_LEVEL": "WARNING",
               # One client address sends everything here: the per-client limit would answer 429.
               "REGISTRATION_RATE_LIMITS_ENABLED": "false"}
        args = [sys.executable, "-m", "registration.main"]
        if profile_to is not None:
            args = [sys.executable, "-m", "cProfile", "-o", str(profile_to), "-m", "registration.main"]
        n = len(self.instances)
        proc = p.ManagedProcess(f"registration#{n}", args, env=env,
                                log_path=self.workdir / f"registration-{n}.log").start()
        url = f"http://127.0.0.1:{port}"
        p.wait_for_http(f"{url}/ready", 120, proc.proc)
        self.instances.append((proc, url))
        return proc, url

    def stop(self) -> None:
        for proc, _ in self.instances:
            proc.stop()
        self.instances.clear()

    async def open_stops(self, capacity: int) -> list[str]:
        snaps = [stop_snapshot(capacity=capacity) for _ in range(self.args.stops)]
        await publish(self.bootstrap, *(StopRegistrationOpenedV1(stop_id=s.stop_id, stop=s) for s in snaps))
        return [s.stop_id for s in snaps]

    async def run(self, label: str) -> dict[str, float]:
        """n sign-ups over the stops and the running instances; figures and the CPU split."""
        n, concurrency = self.args.n, self.args.concurrency
        per_stop_capacity = max(1, n // self.args.stops // 2)
        stop_ids = await self.open_stops(per_stop_capacity)
        urls = [url for _, url in self.instances]
        limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            for url in urls:  # every instance knows every stop before the clock starts
                for stop_id in stop_ids:
                    for _ in range(600):
                        if (await http.get(f"{url}/api/v1/stops/{stop_id}/availability")).status_code == 200:
                            break
                        await asyncio.sleep(0.1)
            statuses: dict[str, int] = {}
            latencies: list[float] = []
            counter = iter(range(n))

            async def worker() -> None:
                for i in counter:
                    s = i % len(stop_ids)
                    # round robin, or (--sticky) a load balancer hashing the stop id: one stop, one instance
                    url, stop_id = urls[(s if self.args.sticky else i) % len(urls)], stop_ids[s]
                    started = time.perf_counter()
                    answer = await http.post(f"{url}/api/v1/stops/{stop_id}/registrations", json=person(label, i))
                    latencies.append((time.perf_counter() - started) * 1000)
                    status = answer.json().get("status") if answer.status_code == 201 else str(answer.status_code)
                    statuses[status] = statuses.get(status, 0) + 1

            pids = {"registration": [proc.pid for proc, _ in self.instances], "mongodb": [self.mongo.pid],
                    "kafka": [self.kafka.pid]}
            cpu_before = {k: sum(cpu_seconds(pid) for pid in v) for k, v in pids.items()}
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - started
            cpu = {k: sum(cpu_seconds(pid) for pid in v) - cpu_before[k] for k, v in pids.items()}
            confirmed = 0
            for stop_id in stop_ids:
                availability = (await http.get(f"{urls[0]}/api/v1/stops/{stop_id}/availability")).json()
                assert availability["confirmed"] <= per_stop_capacity, f"overbooked: {availability}"
                confirmed += availability["confirmed"]
        errors = n - statuses.get("confirmed", 0) - statuses.get("waitlisted", 0)
        figures = {
            "per_s": n / wall, "p50_ms": statistics.median(latencies),
            "p99_ms": statistics.quantiles(latencies, n=100)[98], "errors": errors,
            "cpu_ms_per_signup": {k: 1000 * v / n for k, v in cpu.items()},
            "cpu_util": {k: v / wall for k, v in cpu.items()},  # 1.0 = one core busy all the time
        }
        print(f"{label}: {len(urls)} instance(s), {n} sign-ups over {len(stop_ids)} stops, concurrency {concurrency}: "
              f"{figures['per_s']:.0f} sign-ups/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
              f"answers {statuses}, confirmed {confirmed}")
        print("  CPU per sign-up (ms) and cores busy: " + ", ".join(
            f"{k} {figures['cpu_ms_per_signup'][k]:.2f} ms / {figures['cpu_util'][k]:.2f}" for k in pids))
        return figures


def print_profile(path: Path, top: int = 15) -> None:
    if not path.exists():
        print("  (no cProfile output: the instance did not exit cleanly)")
        return
    stats = pstats.Stats(str(path))
    print(f"cProfile of the single instance, top {top} by own time:")
    stats.sort_stats("tottime").print_stats(top)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="sign-ups per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stops", type=int, default=9, help="stops the sign-ups are spread over (1 = one hot stop)")
    parser.add_argument("--sticky", action="store_true",
                        help="send each stop's sign-ups to one instance (as a load balancer hashing the stop id)")
    parser.add_argument("--cprofile", action="store_true", help="then profile one instance under a third load")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="scaling-bench-"))
    bench = Bench(args, workdir)
    profile_path = workdir / "registration.prof" if args.cprofile else None
    try:
        bench.start_infra()
        bench.start_instance()
        one = await bench.run("one")
        bench.start_instance()
        two = await bench.run("two")
        if profile_path is not None:  # a third run, apart: cProfile slows the instance down
            bench.stop()
            proc, _ = bench.start_instance(profile_path)
            await bench.run("profiled")
            os.killpg(proc.pid, signal.SIGINT)  # uvicorn re-raises SIGTERM (no profile); SIGINT ends in finally
            proc.proc.wait(30)
            print_profile(profile_path)
    finally:
        bench.stop()
        bench.kafka.stop()
        bench.mongo.stop()
    ratio = two["per_s"] / one["per_s"]
    db_share = {label: f["cpu_util"]["mongodb"] for label, f in (("one", one), ("two", two))}
    print(f"ratio two/one: {ratio:.2f}; database busy {db_share['one']:.2f} -> {db_share['two']:.2f} cores, "
          f"registration busy {one['cpu_util']['registration']:.2f} -> {two['cpu_util']['registration']:.2f} cores")
    print("command: " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))
    print(json.dumps({
        "one_per_s": round(one["per_s"], 1), "one_p99_ms": round(one["p99_ms"], 1),
        "two_per_s": round(two["per_s"], 1), "two_p99_ms": round(two["p99_ms"], 1), "ratio": round(ratio, 2),
        "errors": one["errors"] + two["errors"],
        "cpu_ms_per_signup": {"one": {k: round(v, 2) for k, v in one["cpu_ms_per_signup"].items()},
                              "two": {k: round(v, 2) for k, v in two["cpu_ms_per_signup"].items()}},
        "cores_busy": {"one": {k: round(v, 2) for k, v in one["cpu_util"].items()},
                       "two": {k: round(v, 2) for k, v in two["cpu_util"].items()}},
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
