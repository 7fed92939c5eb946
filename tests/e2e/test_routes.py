"""The message catalogue table (SPEC §4) and the result → field 39 table (SPEC §5), checked as data."""

from __future__ import annotations

import pytest

from switch.pipeline.results import RC_OF, Result
from switch.pipeline.routes import ROUTES_BY_NAME, find_route
from switch.rc import RC


@pytest.mark.parametrize(
    ("mti", "fields", "name"),
    [
        ("0800", {"60": "00000001003"}, "signon"),
        ("0800", {"60": "00000001004"}, "signon"),
        ("0820", {"60": "00000001002"}, "signoff"),
        ("0820", {"60": "00000001301"}, "echo"),
        ("0200", {"3": "310000", "25": "00", "60": "01000001"}, "balance"),
        ("0200", {"3": "000000", "25": "00", "60": "22000001"}, "purchase"),
        ("0200", {"3": "200000", "25": "00", "60": "23000001"}, "void"),
        ("0220", {"3": "200000", "25": "00", "60": "25000001"}, "refund"),
        ("0200", {"3": "630000", "25": "00", "60": "48000001"}, "topup"),
        ("0200", {"3": "700000", "25": "00", "60": "70000001"}, "pinchange"),
        ("0400", {"3": "000000", "25": "00", "60": "22000001"}, "reversal"),
        ("0400", {"3": "200000", "25": "00", "60": "23000001"}, "reversal"),
        ("0400", {"3": "630000", "25": "00", "60": "48000001"}, "reversal"),
        ("0500", {"60": "00000001201"}, "settlement"),
    ],
)
def test_every_catalogue_entry_is_routed(mti: str, fields: dict[str, str], name: str) -> None:
    route, why = find_route(mti, fields)
    assert why is None and route is not None and route.name == name


@pytest.mark.parametrize(
    ("mti", "fields", "result"),
    [
        ("0200", {"3": "990000", "25": "00", "60": "22000001"}, Result.TYPE_UNKNOWN),
        ("0100", {"3": "000000", "25": "00", "60": "22000001"}, Result.TYPE_UNKNOWN),
        ("0820", {"60": "00000001999"}, Result.TYPE_UNKNOWN),
        ("0200", {"3": "000000", "25": "00", "60": "23000001"}, Result.TYPE_WRONG_STATE),
        ("0220", {"3": "200000", "25": "00", "60": "23000001"}, Result.TYPE_WRONG_STATE),
        ("0400", {"3": "310000", "25": "00", "60": "01000001"}, Result.TYPE_UNKNOWN),
    ],
)
def test_unknown_and_wrong_state_types(mti: str, fields: dict[str, str], result: Result) -> None:
    assert find_route(mti, fields) == (None, result)


def test_mac_exactly_where_spec_section_3_lists_it() -> None:
    maced = {n for n, r in ROUTES_BY_NAME.items() if r.mac}
    assert maced == {"balance", "purchase", "void", "refund", "topup", "pinchange", "reversal"}


def test_every_result_has_a_response_code_and_the_spec_mapping_holds() -> None:
    assert set(RC_OF) == set(Result)
    assert RC_OF[Result.REVERSAL_AMOUNT_MISMATCH] is RC.ORIGINAL_NOT_FOUND
    assert RC_OF[Result.PIN_BLOCK_INVALID] is RC.PIN_FORMAT_ERROR
    assert RC_OF[Result.LEDGER_UNAVAILABLE] is RC.ISSUER_UNAVAILABLE
    assert RC_OF[Result.HSM_UNAVAILABLE] is RC.SYSTEM_MALFUNCTION
