"""Wait for an asynchronous outcome without fixed sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T] | T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call ``check`` until it returns a truthy value without raising AssertionError; return that value.

    On timeout, re-raise the last AssertionError (or say what the last value was).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = AssertionError(f"condition still false after {timeout}s (last value: {value!r})")
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise last
        await asyncio.sleep(interval)
