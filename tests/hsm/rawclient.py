"""A deliberately plain client for the simulator's tests: raw bytes in, framed replies out (real TCP)."""

from __future__ import annotations

import asyncio
import contextlib

from hsm_sim.server import HsmSimServer
from switch.hsm.wire import HsmReply, encode_command, parse_reply


class RawClient:
    def __init__(self, server: HsmSimServer, header_len: int = 4) -> None:
        assert server.address is not None
        self.address = server.address
        self.header_len = header_len
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self._n = 0

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection(*self.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    def header(self) -> bytes:
        self._n += 1
        return str(self._n % 10**self.header_len).zfill(self.header_len).encode()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_reply(self, timeout: float = 2.0) -> HsmReply:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big")), timeout)
        return parse_reply(body, self.header_len)

    async def command(self, code: str, fields: bytes = b"") -> HsmReply:
        header = self.header()
        await self.send_raw(encode_command(header, code.encode(), fields))
        reply = await self.read_reply()
        assert reply.header == header
        return reply

    async def closed_by_peer(self, timeout: float = 3.0) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), timeout) == b""
        except (ConnectionError, TimeoutError):
            return True
