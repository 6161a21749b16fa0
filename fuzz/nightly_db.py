"""The example database a nightly run shares: hypothesis's own, a directory or Redis.

The property suite stores its failures there (hypothesis replays them first next time, on any
machine using the same database), and the nightly campaign stores its minimised findings and the
keys it has seen under its own keys, so another machine replays them before it searches and does
not report them as new.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sledfuzz.fuzz.nightly_findings import FindingKey

FINDINGS_KEY = b"sledfuzz-nightly:findings:"
SEEN_KEY = b"sledfuzz-nightly:seen"
REDIS_EXPIRY = timedelta(days=60)  # a key not written for two months is forgotten (hypothesis: 8 days)
ENV_DB = "SLEDFUZZ_NIGHTLY_DB"  # how the property suite's pytest plugin is told which database


class DatabaseUnavailable(Exception):
    """The database cannot be used (Redis down, client missing, bad URL); one line."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sledfuzz`` (default ``~/.cache/sledfuzz``): never the working directory."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sledfuzz"


def default_directory() -> Path:
    return cache_dir() / "hypothesis"


@dataclass(frozen=True)
class DatabaseSpec:
    """``redis://HOST:PORT[/DB]`` or a directory path; ``describe`` is what reports show."""

    url: str

    @property
    def is_redis(self) -> bool:
        return self.url.startswith(("redis://", "rediss://"))

    def describe(self) -> str:
        if self.is_redis:
            p = urlparse(self.url)
            return f"redis {p.hostname}:{p.port or 6379}"  # never the password, if the URL has one
        return f"directory {self.url}"


def open_database(spec: DatabaseSpec) -> Any:
    """A hypothesis ``ExampleDatabase``; a Redis that does not answer a PING raises DatabaseUnavailable."""
    if not spec.is_redis:
        from hypothesis.database import DirectoryBasedExampleDatabase

        try:
            Path(spec.url).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(f"{spec.url}: cannot create: {exc.strerror or exc}") from None
        return DirectoryBasedExampleDatabase(spec.url)
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise DatabaseUnavailable("the Redis client is not installed (pip install 'sledfuzz[nightly]')") from None
    try:
        client = redis.Redis.from_url(spec.url, socket_connect_timeout=5, socket_timeout=30)
        client.ping()
    except ValueError as exc:
        raise DatabaseUnavailable(f"{spec.url}: {exc}") from None
    except redis.exceptions.RedisError as exc:
        raise DatabaseUnavailable(f"{spec.describe()} does not answer: {' '.join(str(exc).split())}") from None
    return RedisExampleDatabase(client, expire_after=REDIS_EXPIRY)


class SharedFindings:
    """The nightly's keys in the example database: minimised findings per implementation, seen keys."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def save(self, key: FindingKey, entry_json: str) -> None:
        self.db.save(FINDINGS_KEY + key.impl.encode(), entry_json.encode())
        self.db.save(SEEN_KEY, key.text().encode())

    def entries(self, impl: str) -> Iterator[str]:
        for value in self.db.fetch(FINDINGS_KEY + impl.encode()):
            yield bytes(value).decode("utf-8", "replace")

    def seen(self) -> set[FindingKey]:
        out = set()
        for value in self.db.fetch(SEEN_KEY):
            key = FindingKey.from_text(bytes(value).decode("utf-8", "replace"))
            if key is not None:
                out.add(key)
        return out
