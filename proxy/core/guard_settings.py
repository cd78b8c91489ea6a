"""The conflict guard's settings: where a guarded route's ETags come from, what one resource is,
and the guard itself (`concurrency:` on a route). Validated by `config.concurrency`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ETagSource:
    """Where a guarded route's ETags come from: `body`, `pointer:/version` or `header:X-Version`."""

    kind: Literal["body", "pointer", "header"] = "body"
    name: str = ""  # the JSON pointer or the header name

    def __str__(self) -> str:
        return self.kind if self.kind == "body" else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """What makes two writes "the same resource" (one lock): `path`, `path_and_query` or `regex:...`.

    Computed from the target the upstream receives (after `strip_prefix`), path normalized.
    """

    kind: Literal["path", "path_and_query", "regex"] = "path"
    pattern: re.Pattern[str] | None = None  # regex: its first group (or whole match) is the key

    def __str__(self) -> str:
        return f"regex:{self.pattern.pattern}" if self.pattern is not None else self.kind


@dataclass(frozen=True, slots=True)
class Concurrency:
    """A route's conflict guard: ETags on reads, If-Match checked and writes serialized."""

    etag: ETagSource = ETagSource()
    require_if_match: bool = True  # a write with neither If-Match nor If-None-Match gets 428
    methods: frozenset[str] = frozenset({"PUT", "PATCH", "DELETE"})  # the writes checked and serialized
    on_mismatch: int = 412  # or 409, for clients written against 409
    max_body: int = 1024 * 1024  # representations are hashed (so buffered) up to this size
    lock: str = "local"  # local (this process) or a redis:// URL (shared by replicas)
    lock_timeout: float = 5.0  # longest wait for a resource's lock; then 503 with Retry-After
    lock_lease: float = 10.0  # redis: a lock not renewed for this long is free again (a crashed holder)
    on_lock_unavailable: Literal["fail", "forward"] = "fail"  # redis unreachable: 503, or write unserialized
    key: ResourceKey = ResourceKey()
    max_waiters: int = 100  # writes queued for one resource in this process; more get 503 at once
    fencing_header: str | None = "X-Fencing-Token"  # redis: the lock's fencing token, sent upstream
