"""Suite-wide fixtures and the card-data scan over everything the suite produced.

At the end of the session (``tests/support/secrets.py``, :class:`SecretScan`) these are checked for a full PAN
(a Luhn-valid 13–19 digit run with a test BIN), a known test PIN block or a known test key; a hit fails the run:

- every log line: structlog output (``LOG_SINK``) and stdlib ``logging`` records (asyncio's "exception never
  retrieved" tracebacks and the like), exception texts included;
- every reply the in-process POS server wrote, field by field (BCD fields as their digits);
- every file left under the session's temporary directories, except declared card-data inputs
  (provisioning files, order CSVs with a ``pan`` column, files passed to ``allow_card_data``).

Subprocess servers' output is scanned by the tests that start them. ``tests/hostile/test_secret_scan.py``
proves each surface is really scanned (planted secrets are found).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.server.connection import PosConnection
from switch.telemetry.logs import configure_logging
from tests.support.secrets import SecretScan

SCAN = SecretScan()
#: every structlog line the suite produced in this process
LOG_SINK = SCAN.logs
_TEMP_ROOTS: list[Path] = []


@pytest.fixture(autouse=True, scope="session")
def _json_logs() -> Iterator[None]:
    configure_logging("debug", stream=LOG_SINK)
    handler = logging.StreamHandler(LOG_SINK)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


@pytest.fixture(autouse=True, scope="session")
def _scan_replies() -> Iterator[None]:
    """Every reply body the POS server writes goes through the scan (the server itself stays untouched)."""
    original = PosConnection.write

    def write(self: PosConnection, body: bytes) -> None:
        SCAN.record_reply(body, self.info.profile)
        original(self, body)

    PosConnection.write = write  # type: ignore[method-assign]
    yield
    PosConnection.write = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _temp_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    _TEMP_ROOTS.append(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    hits = SCAN.findings(_TEMP_ROOTS)
    if hits:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"card data or keys found in the suite's output ({len(hits)} hits), e.g. {hits[:5]}"
        if reporter is not None:
            reporter.write_line(f"SECRET SCAN FAILED: {msg}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
