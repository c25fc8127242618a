"""JSON Schema snapshots of every published event version (committed; CI checks them).

    python -m shared.contracts.schemas --write   # after adding an event or an optional field
    python -m shared.contracts.schemas --check   # fails if a published schema changed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts.registry import all_events

SNAPSHOT_DIR = Path(__file__).resolve().parents[3] / "schemas"


def snapshot(cls: type) -> dict[str, Any]:
    schema = cls.model_json_schema(mode="serialization")
    return {"x-event-type": cls.TYPE, "x-topic": cls.TOPIC, **schema}


def render(cls: type) -> str:
    return json.dumps(snapshot(cls), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def snapshot_path(cls: type, directory: Path = SNAPSHOT_DIR) -> Path:
    return directory / f"{cls.TYPE}.json"


def differences(directory: Path = SNAPSHOT_DIR) -> list[str]:
    problems = []
    for cls in all_events():
        path = snapshot_path(cls, directory)
        if not path.exists():
            problems.append(f"{cls.TYPE}: no committed snapshot (run make schemas)")
        elif path.read_text() != render(cls):
            problems.append(f"{cls.TYPE}: schema differs from the committed snapshot {path.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
        for cls in all_events():
            snapshot_path(cls).write_text(render(cls))
        print(f"wrote {len(all_events())} schemas to {SNAPSHOT_DIR}")
        return 0
    problems = differences()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
