"""Terminal simulator fixtures: the e2e ``stack`` (a real switch on every backend of ``tests/e2e``), the
stack's provisioning file as the simulator's keys file, a CLI runner, and a TCP proxy that can lose or
corrupt replies (what a real line does to a terminal)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from switch.iso.codec import CodecError, decode_message
from switch.iso.profiles import CUP
from terminal_sim.cli import main
from tests.e2e.conftest import loop_errors, stack  # noqa: F401  (fixtures re-exported for this package)
from tests.support.secrets import find_secrets
from tests.support.stack import Stack, provisioning_toml


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "program(**settings): [program] settings for the e2e stack")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(provisioning_toml(), encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class Sim:
    """Runs ``terminal-sim`` (the real ``main``) in a worker thread with its own event loop."""

    def __init__(self, capsys: pytest.CaptureFixture[str], keys: Path, state: Path, port: int) -> None:
        self.capsys, self.keys, self.state, self.port = capsys, keys, state, port

    def args(self, port: int | None = None, profile: str = "cup") -> list[str]:
        return [
            "--switch",
            f"127.0.0.1:{port or self.port}",
            "--profile",
            profile,
            "--keys",
            str(self.keys),
            "--state",
            str(self.state),
        ]

    async def __call__(self, *argv: str, port: int | None = None, profile: str = "cup") -> CliResult:
        self.capsys.readouterr()
        # a hung command fails the test (the worker thread is abandoned) instead of hanging the suite
        code = await asyncio.wait_for(asyncio.to_thread(main, [*self.args(port, profile), *argv]), 120)
        out, err = self.capsys.readouterr()
        hits = find_secrets(out + err)
        assert not hits, f"card data in terminal-sim output: {hits}"
        return CliResult(code, out, err)

    def state_of(self, tid: str) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.state / f"{tid}.json").read_text())
        return data


@pytest.fixture
def sim(stack: Stack, capsys: pytest.CaptureFixture[str], keys_file: Path, tmp_path: Path) -> Sim:  # noqa: F811
    return Sim(capsys, keys_file, tmp_path / "state", stack.port("cup"))


class LossyProxy:
    """A TCP proxy in front of the switch. ``drop_replies`` / ``corrupt_replies`` name how many of the next
    replies to lose or to damage (last byte of the MAC flipped; only replies with MTI ``corrupt_mti`` when it
    is set), ``drop_every`` loses one reply in N; ``blackhole`` answers nothing at all."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.drop_replies = 0
        self.corrupt_replies = 0
        self.corrupt_mti = ""
        #: replies damaged so far
        self.corrupted = 0
        #: lose one reply in this many (0: never), for as long as the proxy runs
        self.drop_every = 0
        self.replies = 0
        self.blackhole = False
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if self.blackhole:
            with contextlib.suppress(ConnectionError):
                await r.read()
            w.close()
            return
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool) -> None:
            try:
                with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                    while True:
                        head = await src.readexactly(2)
                        body = await src.readexactly(int.from_bytes(head, "big"))
                        if replies:
                            self.replies += 1
                        if replies and self.drop_every and self.replies % self.drop_every == 0:
                            continue
                        if replies and self.drop_replies:
                            self.drop_replies -= 1
                            continue
                        if replies and self.corrupt_replies and self._mti_matches(body):
                            self.corrupt_replies -= 1
                            self.corrupted += 1
                            body = body[:-1] + bytes([body[-1] ^ 0x01])
                        dst.write(head + body)
                        await dst.drain()
            finally:  # also when stop() cancels the pump
                dst.close()

        t1 = asyncio.create_task(pump(r, uw, False))
        t2 = asyncio.create_task(pump(ur, w, True))
        for t in (t1, t2):
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)
        # stop() may cancel the pumps while a client is still connected: that ends this client quietly
        await asyncio.gather(t1, t2, return_exceptions=True)

    def _mti_matches(self, body: bytes) -> bool:
        if not self.corrupt_mti:
            return True
        try:
            return decode_message(body, CUP).mti == self.corrupt_mti
        except CodecError:
            return False

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def proxy(stack: Stack) -> AsyncIterator[LossyProxy]:  # noqa: F811
    p = LossyProxy(stack.port("cup"))
    await p.start()
    yield p
    await p.stop()


def field_of(text: str, label: str) -> str:
    """The value printed after ``label:`` on a receipt."""
    for line in text.splitlines():
        if f"{label}:" in line:
            return line.split(f"{label}:", 1)[1].strip()
    raise AssertionError(f"{label} not on the receipt")


StepCheck = Callable[[CliResult], None]
