"""Card issuance over the HSM client (:class:`switch.backoffice.cards.IssuerHsm`): ``JA`` a random PIN under
the LMK, ``DE`` its IBM 3624 offset, ``PE`` the PIN mailer. The clear PIN never leaves the HSM.

``async with HsmIssuer.from_config(cfg) as hsm`` opens a one-connection client and checks that the HSM answers
(``NC``), so an unreachable HSM stops the command with one line before any card is numbered. HSM failures are
reported as :class:`HandledError` naming the command and payShield error code only.
"""

from __future__ import annotations

from switch.config import SwitchConfig
from switch.errors import HandledError
from switch.hsm.client import HsmClient
from switch.hsm.connect import hsm_client
from switch.hsm.errors import HsmClientError, HsmError


class HsmIssuer:
    def __init__(self, client: HsmClient, pvk_lmk: str = "") -> None:
        self._client = client
        self._pvk = pvk_lmk  # "" = the development PVK (switch.hsm.dev)

    @classmethod
    def from_config(cls, cfg: SwitchConfig) -> HsmIssuer:
        return cls(hsm_client(cfg.hsm, pool_size=1), cfg.hsm.pvk_lmk)

    async def __aenter__(self) -> HsmIssuer:
        await self._client.start()
        try:
            await self._client.diagnostics()
        except HsmClientError as exc:
            await self._client.close()
            raise _handled(exc) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def new_pin(self, pan: str) -> str:
        try:
            return await self._client.generate_pin(pan)
        except HsmClientError as exc:
            raise _handled(exc) from None

    async def offset_of(self, pan: str, pin_lmk: str) -> str:
        try:
            return await self._client.ibm_offset(self._pvk, pin_lmk, pan)
        except HsmClientError as exc:
            raise _handled(exc) from None

    async def print_mailer(self, pan: str, pin_lmk: str, lines: list[str]) -> None:
        try:
            await self._client.print_pin_mailer(pan, pin_lmk, [s.replace(";", ",") for s in lines])
        except HsmClientError as exc:
            raise _handled(exc) from None


def _handled(exc: HsmClientError) -> HandledError:
    if isinstance(exc, HsmError):
        return HandledError(f"HSM command {exc.command} failed with error {exc.code}")
    return HandledError(f"HSM unavailable: {exc}")
