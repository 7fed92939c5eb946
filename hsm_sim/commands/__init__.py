"""Host commands by code. Each handler takes the device and a :class:`~hsm_sim.fields.Fields` cursor over
the command's fields and returns the reply fields (error ``00``), or raises :class:`CommandError`.

The subset implemented, with each command's fields, is documented in ``docs/HSM.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from hsm_sim.commands import cards, diagnostics, keys, mac, pin
from hsm_sim.device import Device
from hsm_sim.fields import Fields

Handler = Callable[[Device, Fields], bytes]

COMMANDS: dict[bytes, Handler] = {
    b"NC": diagnostics.nc_diagnostics,
    b"BU": keys.bu_check_value,
    b"A0": keys.a0_generate_key,
    b"A6": keys.a6_import_key,
    b"A8": keys.a8_export_key,
    b"BA": pin.ba_encrypt_clear_pin,
    b"CA": pin.ca_translate_tpk_to_zpk,
    b"DA": pin.da_verify_ibm_terminal,
    b"EA": pin.ea_verify_ibm_interchange,
    b"DU": pin.du_change_ibm_offset,
    b"DE": pin.de_ibm_offset,
    b"EE": pin.ee_derive_ibm_pin,
    b"JA": pin.ja_random_pin,
    b"JG": pin.jg_translate_lmk_to_zpk,
    b"PE": pin.pe_print_mailer,
    b"DG": cards.dg_generate_pvv,
    b"DC": cards.dc_verify_pvv_terminal,
    b"EC": cards.ec_verify_pvv_interchange,
    b"CW": cards.cw_generate_cvv,
    b"CY": cards.cy_verify_cvv,
    b"M6": mac.m6_generate_mac,
    b"M8": mac.m8_verify_mac,
}
