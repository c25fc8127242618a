"""Video URLs per provider: check that a URL belongs to the chosen provider and derive its embeddable URL.

Only https URLs are accepted, so ``javascript:``, ``data:`` and plain-http links
never reach a page; URLs carrying credentials are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import SplitResult, parse_qs, urlsplit

from shared.contracts.replays import Provider
from shared.errors import Unprocessable

MAX_URL_LENGTH = 2000

_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com"}
_VIMEO_PATH = re.compile(r"/(\d+)/?")
_VIMEO_HOSTS = {"vimeo.com", "www.vimeo.com"}
_DAILYMOTION_PATH = re.compile(r"/video/([A-Za-z0-9]+)/?")
_DAILYMOTION_HOSTS = {"dailymotion.com", "www.dailymotion.com"}
_DAILY_SHORT_PATH = re.compile(r"/([A-Za-z0-9]+)/?")
_PEERTUBE_SHORT_PATH = re.compile(r"/w/([A-Za-z0-9]{1,64})/?")
_PEERTUBE_WATCH_PATH = re.compile(
    r"/videos/watch/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?", re.IGNORECASE
)
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class _NotThisProvider(ValueError):
    pass


def embed_url(provider: Provider, url: str) -> str:
    """The embeddable URL of ``url``; 422 naming ``url`` when it does not belong to ``provider``."""
    parts = _https_parts(url)
    try:
        return _EMBEDDERS[provider](parts)
    except _NotThisProvider as exc:
        raise _invalid(f"not a {provider} video URL: {exc}") from exc


def _https_parts(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"URL longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise _invalid("URL must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise _invalid("URL must start with https://")
    if parts.username or parts.password:
        raise _invalid("URL must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise _invalid("URL has an invalid port") from exc
    if not parts.hostname or not _HOSTNAME.fullmatch(parts.hostname):
        raise _invalid("URL must name a host such as video.example.org")
    return parts


def _invalid(message: str) -> Unprocessable:
    return Unprocessable(f"invalid video URL: {message}", fields={"url": message})


def _youtube(parts: SplitResult) -> str:
    host = parts.hostname
    if host == "youtu.be":
        video_id = parts.path.strip("/")
    elif host in _YOUTUBE_HOSTS and parts.path.rstrip("/") == "/watch":
        video_id = (parse_qs(parts.query).get("v") or [""])[0]
    elif host in _YOUTUBE_HOSTS and parts.path.startswith("/embed/"):
        video_id = parts.path.removeprefix("/embed/").strip("/")
    else:
        raise _NotThisProvider("expected youtube.com/watch?v=…, youtu.be/… or youtube.com/embed/…")
    if not _YOUTUBE_ID.fullmatch(video_id):
        raise _NotThisProvider("the video id must be 11 characters (letters, digits, - or _)")
    # The no-cookie domain: viewers of the catalogue are not tracked until they press play.
    return f"https://www.youtube-nocookie.com/embed/{video_id}"


def _vimeo(parts: SplitResult) -> str:
    match = _VIMEO_PATH.fullmatch(parts.path)
    if parts.hostname not in _VIMEO_HOSTS or not match:
        raise _NotThisProvider("expected vimeo.com/<digits>")
    return f"https://player.vimeo.com/video/{match.group(1)}"


def _dailymotion(parts: SplitResult) -> str:
    if parts.hostname in _DAILYMOTION_HOSTS:
        match = _DAILYMOTION_PATH.fullmatch(parts.path)
    elif parts.hostname == "dai.ly":
        match = _DAILY_SHORT_PATH.fullmatch(parts.path)
    else:
        match = None
    if not match:
        raise _NotThisProvider("expected dailymotion.com/video/<id> or dai.ly/<id>")
    return f"https://www.dailymotion.com/embed/video/{match.group(1)}"


def _peertube(parts: SplitResult) -> str:
    match = _PEERTUBE_SHORT_PATH.fullmatch(parts.path) or _PEERTUBE_WATCH_PATH.fullmatch(parts.path)
    if not match:
        raise _NotThisProvider("expected https://<instance>/w/<id> or https://<instance>/videos/watch/<uuid>")
    return f"https://{parts.netloc}/videos/embed/{match.group(1)}"


def _plain(parts: SplitResult) -> str:
    return parts.geturl()


_EMBEDDERS: dict[str, Callable[[SplitResult], str]] = {
    "youtube": _youtube,
    "vimeo": _vimeo,
    "dailymotion": _dailymotion,
    "peertube": _peertube,
    "url": _plain,
}
