"""Luhn (mod 10) check digits for PANs."""

from __future__ import annotations


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    """True when ``pan`` is all digits, at least 2 long, and its last digit is its Luhn check digit."""
    return len(pan) >= 2 and pan.isdigit() and luhn_check_digit(pan[:-1]) == pan[-1]
