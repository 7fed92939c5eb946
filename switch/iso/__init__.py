"""Wire layer: ISO 8583 framing, the cup TPDU/header, both wire profiles and the normalized message.

Pure (no asyncio, no logging, no database); imports only the standard library and pyiso8583.

- ``framing``: 2-byte big-endian length prefix, sans-IO ``FrameDecoder``.
- ``tpdu`` / ``header``: the cup TPDU (swapped on reply) and 6-byte header (processing requirement digit).
- ``specs``: ``CUP_SPEC`` and ``ISO87_SPEC`` as pyiso8583 spec dicts; ``layout`` compiles them.
- ``profiles``: ``WireProfile``, ``CUP``, ``ISO87``, ``PROFILES``.
- ``message``: ``IsoMessage`` and MTI helpers; ``codec``: ``decode_message``, ``encode_message``,
  ``mac_block``, ``replace_mac``, ``reply_to``, ``CodecError``.
- ``fields``: ``DE`` names and the subfield helpers of fields 35, 48, 54, 60, 61; ``describe``: masked dump.
"""
