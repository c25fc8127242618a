"""Every published event class, found in the owner modules' ``EVENTS`` tuples."""

from __future__ import annotations

import importlib
import pkgutil

import shared.contracts as package
from shared.contracts.base import Event

NON_OWNER_MODULES = {"base", "topics", "registry", "schemas"}


def all_events() -> list[type[Event]]:
    events: list[type[Event]] = []
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name in NON_OWNER_MODULES:
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        events.extend(getattr(module, "EVENTS", ()))
    return sorted(events, key=lambda cls: cls.TYPE)


def by_type() -> dict[str, type[Event]]:
    return {cls.TYPE: cls for cls in all_events()}
