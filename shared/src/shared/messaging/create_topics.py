"""Create every topic of shared.contracts.topics (docker-compose's and Kubernetes' init job).

    python -m shared.messaging.create_topics --bootstrap kafka:9092 [--partitions 9] [--replication 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.contracts.topics import ALL_TOPICS, DEFAULT_PARTITIONS
from shared.messaging.broker import ensure_topics


async def create(bootstrap: str, partitions: int, replication: int, attempts: int = 60) -> None:
    for attempt in range(1, attempts + 1):
        try:
            await ensure_topics(bootstrap, ALL_TOPICS, partitions, replication)
            return
        except Exception as exc:  # the broker may still be starting
            if attempt == attempts:
                raise
            print(f"waiting for {bootstrap}: {exc!r}", file=sys.stderr)
            await asyncio.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument("--replication", type=int, default=1)
    args = parser.parse_args(argv)
    asyncio.run(create(args.bootstrap, args.partitions, args.replication))
    print("topics ready: " + ", ".join(ALL_TOPICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
