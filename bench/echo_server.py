"""The SPEC §11 baseline: a bare length-prefixed pyiso8583 echo server.

It decodes each framed message with the profile's spec, sets field 39 to 00, re-encodes and answers — the
least an ISO 8583 server can do. The switch's throughput is reported as a ratio to this one, driven by the
same load generator in the same run. Run: ``python bench/echo_server.py --listen 127.0.0.1:0 --profile cup``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
from collections.abc import Mapping
from typing import Any

import iso8583

from switch.iso.profiles import PROFILES


class EchoProtocol(asyncio.Protocol):
    def __init__(self, spec: Mapping[str, Mapping[str, Any]], prefix: int) -> None:
        self._spec = spec
        self._prefix = prefix  # bytes of TPDU + header to copy through (cup)
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        out = []
        while len(buf) >= 2:
            (n,) = struct.unpack_from(">H", buf)
            if len(buf) < 2 + n:
                break
            body, buf = buf[2 : 2 + n], buf[2 + n :]
            head, msg = body[: self._prefix], body[self._prefix :]
            doc, _ = iso8583.decode(msg, self._spec)
            doc["t"] = doc["t"][:2] + str(int(doc["t"][2]) + 1) + doc["t"][3]
            doc["39"] = "00"
            doc.pop("p", None)
            doc.pop("1", None)
            raw, _ = iso8583.encode(doc, self._spec)
            reply = head + bytes(raw)
            out.append(struct.pack(">H", len(reply)) + reply)
        self._buf = buf
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--profile", default="cup", choices=sorted(PROFILES))
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    profile = PROFILES[args.profile]
    prefix = 11 if profile.has_tpdu else 0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoProtocol(profile.spec, prefix), host, int(port))
    bound = server.sockets[0].getsockname()
    print(json.dumps({"event": "listening", "profile": args.profile, "host": bound[0], "port": bound[1]}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        sys.exit(runner.run(main()))
