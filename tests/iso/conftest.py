"""Fixtures of the wire-layer tests (helpers live in ``tests/iso/isohelpers.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.iso.isohelpers import load_vector, unionpay_ecb_mac


@pytest.fixture(scope="session")
def spec_examples() -> dict[str, Any]:
    data: dict[str, Any] = load_vector("spec_examples.json")
    return data


@pytest.fixture(scope="session")
def public_samples() -> dict[str, Any]:
    data: dict[str, Any] = load_vector("public_samples.json")
    return data


@pytest.fixture(scope="session")
def mac_fn() -> Callable[[bytes, bytes], bytes]:
    return unionpay_ecb_mac
