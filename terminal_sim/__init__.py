"""POS terminal simulator (SPEC §10): talks to the switch only over the wire, like a real terminal.

``terminal`` (state machine: batch, STAN, working keys, pending reversal), ``messages`` (request fields per
type), ``client`` (framed TCP, replies matched by their own MTI/11/41, timeouts), ``session`` (sign-on,
reversal before the next request, advice retransmission), ``state`` (owner-only state file), ``receipt``,
``scenario`` (TOML scripts with expectations), ``load`` + ``report`` (load generator, HDR percentiles),
``cli`` (``terminal-sim``). Imports only the switch's pure leaves (``switch.iso``, ``switch.crypto``,
``switch.rc``, ``switch.telemetry.masking``).
"""
