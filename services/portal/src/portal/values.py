"""Turning what people type into what the services expect, and back."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class BadValue(ValueError):
    """The text cannot be read; the message is an i18n key."""


def paris_datetime(day: str, clock_time: str) -> str:
    """'2022-04-12' + '09:30' → ISO datetime with the Paris offset of that day."""
    try:
        moment = datetime.combine(date.fromisoformat(day), time.fromisoformat(clock_time), tzinfo=PARIS)
    except ValueError as exc:
        raise BadValue("error.time") from exc
    return moment.isoformat()


def local_clock(value: Any) -> str:
    """ISO datetime → 'HH:MM' in Paris time (for time inputs)."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(PARIS).strftime("%H:%M")
    except ValueError:
        return ""


def parse_clock(text: str) -> int:
    """'1:02:03', '02:03' or '3' → seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise BadValue("error.clock")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


def clock(seconds: Any) -> str:
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def parse_number(text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text.replace(",", ".") if kind is float else text)
    except ValueError as exc:
        raise BadValue("error.number") from exc


def parse_lines(text: str, *, sep: str = ";") -> list[list[str]]:
    """Non-empty lines, each split on ``sep`` and stripped."""
    return [[cell.strip() for cell in line.split(sep)] for line in text.splitlines() if line.strip()]


def format_speakers(speakers: list[dict[str, Any]]) -> str:
    return "\n".join(" ; ".join(filter(None, [s.get("name", ""), s.get("role", ""), s.get("organisation", "")]))
                     for s in speakers)


def parse_speakers(text: str) -> list[dict[str, str]]:
    """'Name ; role ; organisation' per line."""
    speakers = []
    for cells in parse_lines(text):
        cells += [""] * (3 - len(cells))
        speakers.append({"name": cells[0], "role": cells[1], "organisation": cells[2]})
    return speakers


def parse_chapters(text: str) -> list[dict[str, Any]]:
    """'12:30 Title' per line."""
    chapters = []
    for line in filter(str.strip, text.splitlines()):
        at, _, title = line.strip().partition(" ")
        chapters.append({"at_s": parse_clock(at), "title": title.strip()})
    return chapters


def format_chapters(chapters: list[dict[str, Any]]) -> str:
    return "\n".join(f"{clock(c.get('at_s'))} {c.get('title', '')}" for c in chapters)


def token_from_url(url: Any) -> str | None:
    """The ``token`` query parameter of a signed self-service link."""
    values = parse_qs(urlsplit(str(url or "")).query).get("token")
    return values[0] if values else None


YES = {"oui", "yes", "o", "y", "1", "true", "x"}


def parse_replay_speakers(text: str) -> list[dict[str, Any]]:
    """'Name ; oui' per line: the second cell says whether the speaker consented to the recording."""
    return [{"name": cells[0], "recording_consent": len(cells) > 1 and cells[1].lower() in YES}
            for cells in parse_lines(text)]

