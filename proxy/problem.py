"""RFC 9457 problem details: the one shape every error leaves in."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .status import reason


@dataclass(slots=True)
class Problem:
    """A problem about to be rendered.

    >>> Problem(status=404, detail="No route.").to_dict()
    {'type': 'about:blank', 'title': 'Not Found', 'status': 404, 'detail': 'No route.'}
    """

    status: int
    title: str = ""
    detail: str = ""
    type: str = "about:blank"
    instance: str | None = None
    request_id: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    proxy_status: str | None = None  # RFC 9209 parameters, e.g. "error=connection_refused"

    def __post_init__(self) -> None:
        if not self.title:
            self.title = reason(self.status)

    @classmethod
    def from_error(cls, error: errors.ProxyError, *, instance: str | None, request_id: str | None) -> Problem:
        return cls(
            status=error.status,
            title=error.title,
            detail=error.detail,
            instance=instance,
            request_id=request_id,
            proxy_status=f"error={error.proxy_status}" if error.proxy_status else None,
        )

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.instance is not None:
            body["instance"] = self.instance
        if self.request_id is not None:
            body["request_id"] = self.request_id
        for key, value in self.extensions.items():
            body.setdefault(key, value)
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
