"""Development key ceremony: clear keys -> keys under the LMK through the HSM's console (SPEC §10b).

Clear key components never travel over the HSM host port. ``switch provision`` turns the clear development
TMKs of a provisioning file into TMKs under the LMK by running the simulator's console command
(``hsm.ceremony_command``, default ``hsm-sim keys import-clear``) as a subprocess: the keys go to its stdin,
one JSON object a line (``{"type": "TMK", "clear": "..."}``), never on its command line, and it prints one
JSON line per key (``{"type", "key_lmk", "kcv"}``). Errors name the step, never a key.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from switch.errors import SwitchError

#: how long the console may take for a whole provisioning file
CEREMONY_TIMEOUT_S = 60.0
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")


class CeremonyError(SwitchError):
    """The ceremony console could not be run or refused the keys (the text never carries a key)."""


@dataclass(frozen=True, slots=True)
class ImportedKey:
    """One key under the LMK: ``key_lmk`` (e.g. ``U`` + 32 hex) and its check value (16H)."""

    key_type: str
    key_lmk: str
    kcv: str


def _scrub(text: str) -> str:
    return _HEX_RUN.sub("[REDACTED]", text.strip().splitlines()[0] if text.strip() else "")


async def import_clear_keys(
    keys: Sequence[tuple[str, str]], command: str, *, timeout_s: float = CEREMONY_TIMEOUT_S
) -> list[ImportedKey]:
    """Run the HSM console ``command`` on ``keys`` (``(key type, clear hex)`` pairs), in order."""
    if not keys:
        return []
    argv = shlex.split(command)
    if not argv:
        raise CeremonyError("hsm.ceremony_command is empty")
    payload = "".join(json.dumps({"type": t, "clear": c}) + "\n" for t, c in keys).encode("ascii")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise CeremonyError(f"cannot run the HSM ceremony console {argv[0]!r} ({type(exc).__name__})") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(payload), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CeremonyError("the HSM ceremony console timed out") from None
    if proc.returncode != 0:
        reason = _scrub(err.decode("utf-8", "replace")) or f"exit status {proc.returncode}"
        raise CeremonyError(f"the HSM ceremony console refused the keys: {reason}")
    results: list[ImportedKey] = []
    for line in out.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            results.append(ImportedKey(str(item["type"]), str(item["key_lmk"]), str(item["kcv"])))
        except (ValueError, KeyError, TypeError):
            raise CeremonyError("the HSM ceremony console printed an unreadable line") from None
    if len(results) != len(keys):
        raise CeremonyError(f"the HSM ceremony console returned {len(results)} keys for {len(keys)}")
    return results
