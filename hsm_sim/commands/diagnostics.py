"""``NC`` perform diagnostics."""

from __future__ import annotations

from hsm_sim.device import Device
from hsm_sim.fields import Fields


def nc_diagnostics(dev: Device, f: Fields) -> bytes:
    """NC: no fields. ND: LMK check value 16H, firmware number 9A."""
    f.end()
    return (dev.lmk.check_value() + dev.firmware.ljust(9)[:9]).encode("ascii")
