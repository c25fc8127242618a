"""`make run`: start the whole local stack on the default (or configured) ports, seed it,
print the URLs, and stop everything cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from shared.localstack.stack import LocalStack, StackPorts


def main() -> int:
    data_dir = Path(os.environ.get("INTERCOTOUR_DATA_DIR", ".local"))
    stack = LocalStack(data_dir, StackPorts.from_env())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"Starting the IntercoTOUR local stack (data in {stack.data_dir}, logs in {stack.log_dir})…", flush=True)
    try:
        stack.start(seed=False)
        print(stack.seed().strip(), flush=True)
    except Exception as exc:
        print(f"\nThe stack did not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    urls = stack.urls
    print(
        "\nIntercoTOUR is running:\n"
        f"  portal         {urls['portal']}\n"
        f"  captured mail  {urls['portal']}/mail   (API {urls['mail']}/api/v1/messages)\n"
        f"  venues         {urls['venues']}/docs\n"
        f"  registration   {urls['registration']}/docs\n"
        f"  replays        {urls['replays']}/docs\n"
        f"  notifications  {urls['notifications']}/docs\n"
        f"  kafka          {stack.kafka_bootstrap}\n"
        f"  mongodb        {stack.mongo_url}\n"
        "  staff login    admin@intercotour.local / intercotour-admin\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            dead = [name for name, proc in stack.processes.items() if not proc.alive()]
            if dead:
                print(f"stopped unexpectedly: {', '.join(dead)} (see {stack.log_dir})", file=sys.stderr)
                return 1
        return 0
    finally:
        print("\nStopping…", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
