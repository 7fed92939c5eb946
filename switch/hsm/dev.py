"""Development key references under the simulator's test LMK (no clear key lives in the switch).

``DEV_PVK_LMK`` is the development PIN verification key (the ``pvk`` of SPEC's worked examples) under the
public Thales test LMK, key type 002, scheme ``U``: with it the SPEC vectors hold (offset ``646684`` for PIN
``123456`` on PAN ``9900010000000019``). ``tests/hsm`` checks it against the simulator's LMK.
"""

from __future__ import annotations

DEV_PVK_LMK = "U1750CDFB0757D3B3994430636DBB281B"
#: SPEC §3 decimalization table
DEV_DECIMALIZATION_TABLE = "0123456789012345"
