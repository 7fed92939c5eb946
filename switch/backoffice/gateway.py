"""SMS gateways for ``switch notify send``: a JSON-lines file or an HTTP webhook.

Delivery is at-least-once: a notice is marked sent only after the gateway accepted it (the file line is
fsynced / the webhook answered 2xx); a crash in between sends it again with the same ``id``, which the
receiver uses to drop duplicates (the webhook also gets it as the ``Idempotency-Key`` header).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from switch.errors import HandledError


@dataclass(frozen=True, slots=True)
class Notice:
    id: str
    kind: str
    mobile: str
    text: str
    created_at: str

    def as_json(self) -> str:
        return json.dumps(
            {"id": self.id, "kind": self.kind, "mobile": self.mobile, "text": self.text, "created_at": self.created_at},
            ensure_ascii=False,
            separators=(",", ":"),
        )


class Gateway(Protocol):
    def deliver(self, notices: Sequence[Notice]) -> int:
        """Deliver in order; return how many (a prefix of ``notices``) were accepted. Raises on total failure."""
        ...


class FileGateway:
    """Appends one JSON object per line to ``path`` (owner-only) and fsyncs before returning."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def deliver(self, notices: Sequence[Notice]) -> int:
        if not notices:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(n.as_json() + "\n" for n in notices).encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HandledError(f"cannot open SMS file {self.path}: {exc.strerror}") from exc
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(notices)


class HttpGateway:
    """POSTs each notice as JSON to ``url``; any 2xx is acceptance. Stops at the first failure."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise HandledError("notify.webhook_url must be an http:// or https:// URL")
        self.url = url
        self.timeout_s = timeout_s
        host = urllib.parse.urlsplit(url).hostname or ""
        # a webhook on this host is reached directly, whatever HTTP proxy the environment names
        handlers = [urllib.request.ProxyHandler({})] if host in ("localhost", "127.0.0.1", "::1") else []
        self._opener = urllib.request.build_opener(*handlers)

    def deliver(self, notices: Sequence[Notice]) -> int:
        sent = 0
        for n in notices:
            req = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self.url,
                data=n.as_json().encode("utf-8"),
                method="POST",
                headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": n.id},
            )
            try:
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    ok = 200 <= resp.status < 300
            except (urllib.error.URLError, OSError, TimeoutError):
                ok = False
            if not ok:
                if sent == 0:
                    raise HandledError("SMS webhook did not accept the first notice; nothing marked sent")
                return sent
            sent += 1
        return sent
