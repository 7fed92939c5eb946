"""Internal result codes of the authorization engine and the one table that maps them to field 39.

Participants decide in terms of *why* (``Result.CARD_LOST``); the wire answer (``RC.LOST_CARD``) comes from
:data:`RC_OF` only. The result name is also logged (``reason``), so a ``14`` for a bad check digit and a
``14`` for an unknown card can be told apart in the logs without ever logging the PAN.
"""

from __future__ import annotations

from enum import StrEnum

from switch.rc import RC


class Result(StrEnum):
    APPROVED = "approved"
    # 1. format
    FORMAT_ERROR = "format_error"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    # 2. terminal / merchant
    TERMINAL_UNKNOWN = "terminal_unknown"
    TERMINAL_MERCHANT_MISMATCH = "terminal_merchant_mismatch"
    MERCHANT_NOT_ACTIVE = "merchant_not_active"
    TERMINAL_NOT_ACTIVE = "terminal_not_active"
    # 3. keys / MAC
    NO_WORKING_KEYS = "no_working_keys"
    MAC_MISSING = "mac_missing"
    MAC_WRONG = "mac_wrong"
    # 4. type
    TYPE_UNKNOWN = "type_unknown"
    TYPE_WRONG_STATE = "type_wrong_state"
    NOT_AT_THIS_TERMINAL = "not_at_this_terminal"
    # 5. duplicate
    DUPLICATE_CONFLICT = "duplicate_conflict"
    # 6. card
    CARD_LUHN = "card_luhn"
    CARD_UNKNOWN = "card_unknown"
    BIN_OUTSIDE_PROGRAM = "bin_outside_program"
    CARD_EXPIRED = "card_expired"
    CARD_INACTIVE = "card_inactive"
    CARD_LOST = "card_lost"
    CARD_RESTRICTED = "card_restricted"
    PIN_LOCKED = "pin_locked"
    # 7. PIN
    PIN_WRONG = "pin_wrong"
    PIN_TRIES_EXCEEDED = "pin_tries_exceeded"
    PIN_BLOCK_INVALID = "pin_block_invalid"
    # 8. amount / limits
    AMOUNT_INVALID = "amount_invalid"
    OVER_TXN_LIMIT = "over_txn_limit"
    OVER_DAILY_AMOUNT = "over_daily_amount"
    OVER_DAILY_COUNT = "over_daily_count"
    OVER_BALANCE_CAP = "over_balance_cap"
    SETTLEMENT_WINDOW = "settlement_window"
    # 9. balance
    INSUFFICIENT_FUNDS = "insufficient_funds"
    # void / refund / reversal
    ORIGINAL_NOT_FOUND = "original_not_found"
    ORIGINAL_AMOUNT_MISMATCH = "original_amount_mismatch"
    ORIGINAL_NOT_VOIDABLE = "original_not_voidable"
    REFUND_EXCEEDS_ORIGINAL = "refund_exceeds_original"
    REVERSAL_AMOUNT_MISMATCH = "reversal_amount_mismatch"
    # system
    HSM_UNAVAILABLE = "hsm_unavailable"
    HSM_ERROR = "hsm_error"
    LEDGER_UNAVAILABLE = "ledger_unavailable"
    INTERNAL_ERROR = "internal_error"


#: the one mapping from internal results to field 39 (SPEC §5)
RC_OF: dict[Result, RC] = {
    Result.APPROVED: RC.APPROVED,
    Result.FORMAT_ERROR: RC.FORMAT_ERROR,
    Result.MISSING_FIELD: RC.FORMAT_ERROR,
    Result.BAD_FIELD: RC.FORMAT_ERROR,
    Result.TERMINAL_UNKNOWN: RC.UNKNOWN_TERMINAL,
    Result.TERMINAL_MERCHANT_MISMATCH: RC.INVALID_MERCHANT,
    Result.MERCHANT_NOT_ACTIVE: RC.INVALID_MERCHANT,
    Result.TERMINAL_NOT_ACTIVE: RC.INVALID_MERCHANT,
    Result.NO_WORKING_KEYS: RC.MAC_ERROR,
    Result.MAC_MISSING: RC.MAC_ERROR,
    Result.MAC_WRONG: RC.MAC_ERROR,
    Result.TYPE_UNKNOWN: RC.UNSUPPORTED,
    Result.TYPE_WRONG_STATE: RC.INVALID_TRANSACTION,
    Result.NOT_AT_THIS_TERMINAL: RC.NOT_PERMITTED_TERMINAL,
    Result.DUPLICATE_CONFLICT: RC.DUPLICATE,
    Result.CARD_LUHN: RC.INVALID_CARD,
    Result.CARD_UNKNOWN: RC.INVALID_CARD,
    Result.BIN_OUTSIDE_PROGRAM: RC.NO_SUCH_ISSUER,
    Result.CARD_EXPIRED: RC.EXPIRED_CARD,
    Result.CARD_INACTIVE: RC.INACTIVE_CARD,
    Result.CARD_LOST: RC.LOST_CARD,
    Result.CARD_RESTRICTED: RC.RESTRICTED_CARD,
    Result.PIN_LOCKED: RC.PIN_TRIES_EXCEEDED,
    Result.PIN_WRONG: RC.INCORRECT_PIN,
    Result.PIN_TRIES_EXCEEDED: RC.PIN_TRIES_EXCEEDED,
    Result.PIN_BLOCK_INVALID: RC.PIN_FORMAT_ERROR,
    Result.AMOUNT_INVALID: RC.INVALID_AMOUNT,
    Result.OVER_TXN_LIMIT: RC.EXCEEDS_AMOUNT_LIMIT,
    Result.OVER_DAILY_AMOUNT: RC.EXCEEDS_AMOUNT_LIMIT,
    Result.OVER_DAILY_COUNT: RC.EXCEEDS_COUNT_LIMIT,
    Result.OVER_BALANCE_CAP: RC.EXCEEDS_AMOUNT_LIMIT,
    Result.SETTLEMENT_WINDOW: RC.CUTOVER_IN_PROGRESS,
    Result.INSUFFICIENT_FUNDS: RC.INSUFFICIENT_FUNDS,
    Result.ORIGINAL_NOT_FOUND: RC.ORIGINAL_NOT_FOUND,
    Result.ORIGINAL_AMOUNT_MISMATCH: RC.AMOUNT_MISMATCH,
    Result.ORIGINAL_NOT_VOIDABLE: RC.INVALID_TRANSACTION,
    Result.REFUND_EXCEEDS_ORIGINAL: RC.INVALID_AMOUNT,
    Result.REVERSAL_AMOUNT_MISMATCH: RC.ORIGINAL_NOT_FOUND,
    Result.HSM_UNAVAILABLE: RC.SYSTEM_MALFUNCTION,
    Result.HSM_ERROR: RC.SYSTEM_MALFUNCTION,
    Result.LEDGER_UNAVAILABLE: RC.ISSUER_UNAVAILABLE,
    Result.INTERNAL_ERROR: RC.SYSTEM_MALFUNCTION,
}

assert set(RC_OF) == set(Result), "every internal result needs a response code"

_RC_BY_CODE: dict[str, RC] = {rc.value: rc for rc in RC}


def rc_from_code(code: str) -> RC:
    """The :class:`RC` for a field 39 value the ledger stored (``96`` for a code the program does not use)."""
    return _RC_BY_CODE.get(code, RC.SYSTEM_MALFUNCTION)
