"""Suite-wide fixtures and the card-data scan over every log line the suite produced.

All in-process log output goes to ``LOG_SINK``; subprocess servers' output is scanned by the tests that start
them (``tests/support/secrets.py``). At the end of the session every captured line is checked for a full PAN
(any 13–19 digit run passing Luhn), a known test PIN block or a known test key; a hit fails the run.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from switch.telemetry.logs import configure_logging
from tests.support.secrets import find_secrets

#: every log line the suite produced in this process
LOG_SINK = io.StringIO()


@pytest.fixture(autouse=True, scope="session")
def _json_logs() -> Iterator[None]:
    configure_logging("debug", stream=LOG_SINK)
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    hits = find_secrets(LOG_SINK.getvalue())
    if hits:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"card data or keys found in log output ({len(hits)} hits), e.g. {hits[:3]}"
        if reporter is not None:
            reporter.write_line(f"SECRET SCAN FAILED: {msg}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
