"""The simulated device: its LMK, its PIN mailer printer, its random source, and key handling shared by
the commands (keys come in under the LMK; clear keys never leave this package)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from hsm_sim.errors import CommandError
from hsm_sim.lmk import Lmk, LmkError, key_type_pair
from hsm_sim.mailer import PinMailer
from switch.crypto.des import has_odd_parity, with_odd_parity

FIRMWARE = "0007-E000"  # 9A, reported by NC
_KEY_CACHE_MAX = 65536


@dataclass(slots=True)
class Device:
    lmk: Lmk
    mailer: PinMailer
    firmware: str = FIRMWARE
    #: PIN length JA uses when the command does not give one
    default_pin_length: int = 6
    rng: secrets.SystemRandom = field(default_factory=secrets.SystemRandom)
    #: keys already decrypted and parity-checked, by (key type, key under LMK): the hot path's cache
    _keys: dict[tuple[str, str], bytes] = field(default_factory=dict)

    @staticmethod
    def check_key_type(key_type: str) -> None:
        """``04`` unless ``key_type`` is a key type code of the variant LMK."""
        try:
            key_type_pair(key_type)
        except LmkError as exc:
            raise CommandError(exc.code, "key type") from None

    def clear_key(self, key_type: str, text: str, parity_code: str) -> bytes:
        """Decrypt ``text`` (a key under the LMK) as ``key_type``; ``parity_code`` (10 or 11) when the clear
        key has no odd parity, ``04`` for an unknown key type, ``15`` for a malformed key."""
        ck = (key_type, text)
        key = self._keys.get(ck)
        if key is not None:
            return key
        try:
            key = self.lmk.decrypt_key(key_type, text)
        except LmkError as exc:
            raise CommandError(exc.code, "key") from None
        if not has_odd_parity(key):
            raise CommandError(parity_code, "key parity")
        if len(self._keys) >= _KEY_CACHE_MAX:
            self._keys.clear()
        self._keys[ck] = key
        return key

    def cached_key(self, key_type: str, text: str) -> bytes | None:
        """A key :meth:`clear_key` has already decrypted and checked, else ``None`` (no work, no error)."""
        return self._keys.get((key_type, text))

    def key_under_lmk(self, key_type: str, clear: bytes, scheme: str) -> str:
        try:
            return self.lmk.encrypt_key(key_type, clear, scheme)
        except LmkError as exc:
            raise CommandError(exc.code, "key scheme") from None

    @staticmethod
    def random_key(length: int) -> bytes:
        """A random DES key of ``length`` bytes with odd parity and distinct halves."""
        while True:
            key = with_odd_parity(secrets.token_bytes(length))
            if length == 8 or key[:8] != key[8:16]:
                return key

    def random_pin(self, length: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(length))
