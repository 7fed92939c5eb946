"""``make demo`` end to end (``scripts/demo.py``): real HSM simulator and switch processes, provisioning,
a receipt, a short load, day close, the clearing file, clean SIGTERM stops; nothing secret on the console."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.secrets import find_secrets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_from_scratch_and_stops_cleanly(tmp_path: Path) -> None:
    var = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "scripts/demo.py", "--var", str(var), "--duration", "2", "--terminals", "6", "--rate", "100"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "00 交易成功 Approved" in out and "990001******" in out  # the cashier's receipt
    assert "batches balanced" in out and "switch: exit 0" in out and "hsm: exit 0" in out
    assert not find_secrets(out), find_secrets(out)
    files = sorted((var / "clearing").glob("CLR_*.txt"))
    assert len(files) == 1
    text = files[0].read_text(encoding="utf-8")
    body, trailer = text.rsplit("T|", 1)
    assert trailer.rstrip("\n").split("|")[-1] == hashlib.sha256(body.encode()).hexdigest()
    assert "|PURCHASE|DR|" in text


def test_demo_refuses_to_wipe_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run([sys.executable, "scripts/demo.py", "--var", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "not wiping it" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
