"""`make run`'s program: the whole stack comes up on the configured ports, prints its URLs,
and Ctrl-C stops every process it started (no orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.localstack.processes import free_port
from shared.localstack.stack import StackPorts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_starts_everything_prints_urls_and_stops_cleanly(tmp_path):
    ports = {name: free_port() for name in StackPorts.__dataclass_fields__}
    env = {**os.environ, "INTERCOTOUR_DATA_DIR": str(tmp_path / "data"),
           **{f"INTERCOTOUR_{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "shared.localstack.run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert "Press Ctrl-C" in text, text[-3000:]
        assert f"http://127.0.0.1:{ports['portal']}" in text
        for name in ("venues", "registration", "replays", "notifications", "portal"):
            assert httpx.get(f"http://127.0.0.1:{ports[name]}/ready", timeout=5).status_code == 200, name
        assert "2022" in text, "the 2022 season was loaded"
        started = children_of(proc.pid)
        assert len(started) >= 8, f"broker, database, mail and five services: {started}"
    finally:
        proc.send_signal(signal.SIGINT)
        remaining = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, remaining[-2000:]
    assert "Stopped." in remaining
    assert [pid for pid in started if alive(pid)] == [], "no orphan process"
    assert (tmp_path / "data" / "mongo").is_dir(), "database files are kept for the next run"
