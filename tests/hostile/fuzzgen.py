"""Structure-aware input generation for fuzzing the wire layer (pure, seeded, no hypothesis).

Shared by the CI tests (``tests/hostile``) and the soak (``scripts/soak.py``), so both fuzz the same way:

- :func:`valid_message` builds a random *valid* message of a profile from its compiled layout (any defined
  field, any legal length, both bitmaps on iso87) and :func:`encode_with_spans` encodes it, returning where
  each part sits, so that mutations can aim at a part;
- :func:`mutate` applies one of :data:`MUTATIONS` to such a message: bit flips, truncation, trailing bytes,
  length-prefix lies (longer, shorter, oversize, non-digit), bitmap bits for absent fields, cleared bits of
  present fields, BCD nibbles above 9, bad pad nibbles, MTI/TPDU/header damage, splices of two messages;
- :func:`random_body` produces unstructured garbage, sometimes behind a valid TPDU + header;
- :func:`frame_stream` produces a byte stream of frames with good and bad length prefixes.

:func:`check_decode` is the oracle of the codec: only :class:`CodecError` may come out, its text is a fixed
reason + field + position (never a value), and whatever decodes re-encodes to the same fields.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from switch.iso.codec import CodecError, decode_message, encode_message
from switch.iso.header import CupHeader
from switch.iso.layout import CHECK_DIGITS, CHECK_HEX_TEXT, CHECK_TRACK, LEN_BCD, LEN_TEXT, FieldLayout
from switch.iso.message import IsoMessage, is_request_mti
from switch.iso.profiles import WireProfile
from switch.iso.tpdu import Tpdu

DIGITS = "0123456789"
HEX = "0123456789ABCDEF"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
#: MTIs of SPEC §4 (requests) plus replies and nonsense, drawn with these weights
MTIS = ("0200", "0220", "0400", "0500", "0800", "0820", "0210", "0810", "0100", "0900", "9999", "0000")

#: every reason text ``CodecError`` may carry on decode (the contract of ``switch.iso.codec``)
DECODE_REASONS = frozenset(
    {
        "invalid TPDU",
        "invalid header",
        "MTI truncated",
        "MTI is not 4 digits",
        "bitmap truncated",
        "bitmap is not hex",
        "secondary bitmap not allowed in this profile",
        "tertiary bitmap not supported",
        "field not defined in this profile",
        "length prefix truncated",
        "length prefix is not BCD",
        "length prefix is not numeric",
        "length exceeds the field maximum",
        "field data truncated",
        "invalid content",
        "invalid pad nibble",
        "invalid text",
        "non-numeric data in a numeric field",
        "invalid track data",
        "invalid hex text",
        "extra data after the last field",
    }
)
_ERROR_TEXT = re.compile(r"^(?P<reason>[A-Za-z0-9 -]+): field (?P<field>t|p|tpdu|header|\d{1,3}) pos (?P<pos>-?\d+)$")


# ------------------------------------------------------------------------------------------ generation


def _length(rng: random.Random, f: FieldLayout) -> int:
    if f.fixed:
        return f.max_len
    pick = rng.random()
    if pick < 0.1:
        return 0
    if pick < 0.2:
        return f.max_len
    return rng.randint(0, min(f.max_len, rng.choice((8, 20, 40, f.max_len))))


def field_value(rng: random.Random, f: FieldLayout) -> str:
    """A value the profile can carry in field ``f``, already in normalized form."""
    n = _length(rng, f)
    if f.check == CHECK_DIGITS:
        if f.binary and not f.nibbles:
            n *= 2
        return "".join(rng.choices(DIGITS, k=n))
    if f.check == CHECK_TRACK:
        sep = "D" if f.binary else rng.choice("=D")
        body = rng.choices(DIGITS, k=n)
        if n > 2:
            body[rng.randint(1, n - 2)] = sep
        return "".join(body)
    if f.check == CHECK_HEX_TEXT:
        return "".join(rng.choices(HEX, k=n - n % 2))
    if f.binary:
        return "".join(rng.choices(HEX, k=n if f.nibbles else 2 * n))
    alphabet = PRINTABLE if rng.random() < 0.9 else "".join(map(chr, range(128)))
    return "".join(rng.choices(alphabet, k=n))


def defined_fields(profile: WireProfile) -> list[FieldLayout]:
    return [f for f in profile.layout.fields if f is not None]


def valid_message(rng: random.Random, profile: WireProfile) -> IsoMessage:
    """A random message the profile encodes: a few business fields, sometimes many random ones."""
    layout_fields = defined_fields(profile)
    chosen: dict[str, FieldLayout] = {}
    for key in ("11", "41", "42"):  # usually answerable
        if rng.random() < 0.9:
            f = profile.layout.fields[int(key)]
            assert f is not None
            chosen[key] = f
    for f in rng.sample(layout_fields, k=rng.randint(0, min(len(layout_fields), rng.choice((4, 12, 40))))):
        chosen[f.key] = f
    fields: dict[str, str] = {}
    for key, f in chosen.items():
        value = field_value(rng, f)
        if key == "11":
            value = "".join(rng.choices(DIGITS, k=6))
        fields[key] = value
    msg = IsoMessage(mti=rng.choice(MTIS), fields=fields)
    if profile.has_tpdu:
        msg.tpdu = Tpdu("".join(rng.choices(HEX, k=4)), "".join(rng.choices(HEX, k=4)))
    if profile.has_header:
        d = "".join(rng.choices(DIGITS, k=12))
        msg.header = CupHeader(d[0:2], d[2:4], d[4], d[5], d[6:12])
    return msg


@dataclass
class Encoded:
    """An encoded body and where its parts are: ``spans[key] = (start, prefix_len, end)``."""

    body: bytes
    profile: WireProfile
    mti_pos: int
    bitmap_pos: int
    spans: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _data_len(value: str, f: FieldLayout) -> int:
    if f.binary:
        return (len(value) + 1) // 2
    return len(value.encode(f.data_codec))


def encode_with_spans(msg: IsoMessage, profile: WireProfile) -> Encoded:
    body = encode_message(msg, profile)
    lay = profile.layout
    pos = profile.prefix_len
    mti_pos = pos
    pos += 2 if lay.mti_binary else 4
    bitmap_pos = pos
    numbers = sorted(int(k) for k in msg.fields)
    pos += 8 if lay.bitmap_binary else 16
    if numbers and numbers[-1] > 64:
        pos += 8 if lay.secondary_binary else 16
    enc = Encoded(body, profile, mti_pos, bitmap_pos)
    for number in numbers:
        f = lay.fields[number]
        assert f is not None
        end = pos + f.len_type + _data_len(msg.fields[f.key], f)
        enc.spans[f.key] = (pos, f.len_type, end)
        pos = end
    assert pos == len(body), "span walk out of step with the encoder"
    return enc


# ------------------------------------------------------------------------------------------- mutation


def _flip_bits(rng: random.Random, enc: Encoded, _other: Encoded) -> bytes:
    b = bytearray(enc.body)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _truncate(rng: random.Random, enc: Encoded, _other: Encoded) -> bytes:
    return enc.body[: rng.randrange(len(enc.body))]


def _append(rng: random.Random, enc: Encoded, _other: Encoded) -> bytes:
    return enc.body + rng.randbytes(rng.randint(1, 20))


def _var_fields(enc: Encoded) -> list[tuple[str, FieldLayout]]:
    out = []
    for key, (_s, plen, _e) in enc.spans.items():
        f = enc.profile.layout.fields[int(key)]
        if plen and f is not None:
            out.append((key, f))
    return out


def _encode_length(value: int, f: FieldLayout) -> bytes:
    if f.len_kind == LEN_BCD:
        return bytes.fromhex(f"{value % 10 ** (2 * f.len_type):0{2 * f.len_type}d}")
    if f.len_kind == LEN_TEXT:
        return f"{value % 10**f.len_type:0{f.len_type}d}".encode(f.len_codec)
    return (value % (1 << (8 * f.len_type))).to_bytes(f.len_type, "big")


def _length_lie(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    candidates = _var_fields(enc)
    if not candidates:
        return _flip_bits(rng, enc, other)
    key, f = rng.choice(candidates)
    start, plen, end = enc.spans[key]
    declared = (end - start - plen) * (2 if f.nibbles else 1)
    kind = rng.randrange(5)
    if kind == 0:
        lie = _encode_length(declared + rng.randint(1, 40), f)  # longer than the data
    elif kind == 1:
        lie = _encode_length(max(0, declared - rng.randint(1, 10)), f)  # shorter
    elif kind == 2:
        lie = _encode_length(f.max_len + rng.randint(1, 50), f)  # above the field maximum
    elif kind == 3:
        lie = _encode_length(10 ** (2 * plen if f.len_kind == LEN_BCD else plen) - 1, f)  # all nines
    else:
        lie = bytes([0xAB] * plen) if f.len_kind != LEN_TEXT else b"A9-"[:plen].ljust(plen, b" ")  # not digits
    return enc.body[:start] + lie + enc.body[start + plen :]


def _set_bitmap_bit(body: bytes, enc: Encoded, number: int, on: bool) -> bytes:
    lay = enc.profile.layout
    b = bytearray(body)
    if number <= 64:
        base, binary = enc.bitmap_pos, lay.bitmap_binary
    else:
        base = enc.bitmap_pos + (8 if lay.bitmap_binary else 16)
        binary = lay.secondary_binary
        number -= 64
        if base + (8 if binary else 16) > len(b) or not (b[enc.bitmap_pos] & 0x80 if lay.bitmap_binary else True):
            return bytes(b)
    if binary:
        i, mask = base + (number - 1) // 8, 0x80 >> ((number - 1) % 8)
        b[i] = b[i] | mask if on else b[i] & ~mask
    else:
        i = base + (number - 1) // 4
        nib = int(chr(b[i]), 16)
        mask = 0x8 >> ((number - 1) % 4)
        b[i] = ord(f"{(nib | mask) if on else (nib & ~mask):X}")
    return bytes(b)


def _bitmap_extra(rng: random.Random, enc: Encoded, _other: Encoded) -> bytes:
    top = 128 if enc.profile.max_field == 128 and enc.body[enc.bitmap_pos] & 0x80 else 64
    absent = [n for n in range(1, top + 1) if str(n) not in enc.spans]
    return _set_bitmap_bit(enc.body, enc, rng.choice(absent), True)


def _bitmap_drop(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    present = [int(k) for k in enc.spans]
    if not present:
        return _bitmap_extra(rng, enc, other)
    return _set_bitmap_bit(enc.body, enc, rng.choice(present), False)


def _bcd_fields(enc: Encoded) -> list[str]:
    out = []
    for key, (start, plen, end) in enc.spans.items():
        f = enc.profile.layout.fields[int(key)]
        if f is not None and f.binary and f.check in (CHECK_DIGITS, CHECK_TRACK) and end > start + plen:
            out.append(key)
    return out


def _bcd_nibble(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    keys = _bcd_fields(enc)
    if not keys:
        return _flip_bits(rng, enc, other)
    start, plen, end = enc.spans[rng.choice(keys)]
    b = bytearray(enc.body)
    i = rng.randrange(start + plen, end)
    nib = rng.randint(0xA, 0xF)
    b[i] = (b[i] & 0x0F) | (nib << 4) if rng.random() < 0.5 else (b[i] & 0xF0) | nib
    return bytes(b)


def _pad_nibble(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    """Make the pad nibble of an odd-length BCD field non-zero (pyiso8583 would not notice)."""
    lay = enc.profile.layout
    odd = []
    for key, (start, plen, end) in enc.spans.items():
        f = lay.fields[int(key)]
        if f is None or not f.nibbles or end == start + plen:
            continue
        digits = enc.body[start + plen : end].hex()
        declared = f.max_len if f.fixed else int(enc.body[start : start + plen].hex())
        if declared % 2:
            odd.append((key, f, start, plen, end, digits))
    if not odd:
        return _bcd_nibble(rng, enc, other)
    _key, f, start, plen, end, digits = rng.choice(odd)
    bad = rng.choice("123456789")
    digits = digits[:-1] + bad if f.pad_side == "R" else bad + digits[1:]
    return enc.body[: start + plen] + bytes.fromhex(digits) + enc.body[end:]


def _mti(rng: random.Random, enc: Encoded, _other: Encoded) -> bytes:
    width = 2 if enc.profile.layout.mti_binary else 4
    junk = (
        rng.randbytes(width) if rng.random() < 0.5 else rng.choice((b"02\x00\x00", b"\x02\x0a", b"0x20", b"\xff\xff"))
    )
    junk = junk[:width].ljust(width, b"0")
    return enc.body[: enc.mti_pos] + junk + enc.body[enc.mti_pos + width :]


def _prefix(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    if not enc.profile.prefix_len:
        return _mti(rng, enc, other)
    b = bytearray(enc.body)
    i = rng.randrange(enc.profile.prefix_len)
    b[i] = rng.randrange(256)
    return bytes(b)


def _splice(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    return enc.body[: rng.randrange(len(enc.body))] + other.body[rng.randrange(len(other.body)) :]


def _field_garbage(rng: random.Random, enc: Encoded, other: Encoded) -> bytes:
    if not enc.spans:
        return _append(rng, enc, other)
    start, plen, end = enc.spans[rng.choice(list(enc.spans))]
    return enc.body[: start + plen] + rng.randbytes(end - start - plen) + enc.body[end:]


Mutation = Callable[[random.Random, Encoded, Encoded], bytes]
MUTATIONS: dict[str, Mutation] = {
    "bit_flip": _flip_bits,
    "truncate": _truncate,
    "append": _append,
    "length_lie": _length_lie,
    "bitmap_extra_bit": _bitmap_extra,
    "bitmap_drop_bit": _bitmap_drop,
    "bcd_nibble_over_9": _bcd_nibble,
    "bad_pad_nibble": _pad_nibble,
    "mti_damage": _mti,
    "tpdu_header_damage": _prefix,
    "splice": _splice,
    "field_garbage": _field_garbage,
}


def mutate(rng: random.Random, enc: Encoded, other: Encoded, kind: str | None = None) -> tuple[str, bytes]:
    """One mutation of ``enc`` (``other`` feeds splices); returns (kind, body)."""
    kind = kind or rng.choice(tuple(MUTATIONS))
    return kind, MUTATIONS[kind](rng, enc, other)


def random_body(rng: random.Random, profile: WireProfile) -> bytes:
    """Unstructured input: random bytes, sometimes behind a valid cup TPDU + header, sometimes ASCII digits."""
    n = rng.choice((rng.randint(0, 16), rng.randint(0, 200), rng.randint(0, 2048)))
    pick = rng.random()
    if pick < 0.3 and profile.has_tpdu:
        return bytes.fromhex("6000030000603100310000") + rng.randbytes(n)
    if pick < 0.5:
        return "".join(rng.choices(DIGITS + "ABCDEF", k=n)).encode()
    return rng.randbytes(n)


def fuzz_body(rng: random.Random, profile: WireProfile) -> tuple[str, bytes]:
    """One fuzz input of any kind: ~10 % valid, ~15 % garbage, the rest mutated valid messages."""
    pick = rng.random()
    if pick < 0.15:
        return "random", random_body(rng, profile)
    enc = encode_with_spans(valid_message(rng, profile), profile)
    if pick < 0.25:
        return "valid", enc.body
    other = encode_with_spans(valid_message(rng, profile), profile)
    return mutate(rng, enc, other)


# ---------------------------------------------------------------------------------------------- oracle


@dataclass
class DecodeOutcome:
    ok: bool
    message: IsoMessage | None = None
    error: CodecError | None = None


class OracleFailure(AssertionError):
    """The codec broke its contract on an input (the input is attached, never printed in full)."""

    def __init__(self, what: str, body: bytes) -> None:
        super().__init__(f"{what} (input of {len(body)} bytes, first 24: {body[:24].hex()})")
        self.body = body


def check_error(exc: CodecError, body: bytes) -> None:
    m = _ERROR_TEXT.match(str(exc))
    if m is None:
        raise OracleFailure("CodecError text is not 'reason: field F pos N'", body)
    if m["reason"] not in DECODE_REASONS or exc.reason != m["reason"]:
        raise OracleFailure(f"unexpected CodecError reason {m['reason']!r}", body)
    if not -1 <= exc.pos <= len(body):
        raise OracleFailure("CodecError position outside the input", body)
    if not set(exc.partial) <= {"t", "11", "41", "42"}:
        raise OracleFailure("CodecError partial holds more than MTI/11/41/42", body)


def check_decode(body: bytes, profile: WireProfile) -> DecodeOutcome:
    """Decode ``body`` and check the codec's contract; raises :class:`OracleFailure` on a breach."""
    try:
        msg = decode_message(body, profile)
    except CodecError as exc:
        check_error(exc, body)
        return DecodeOutcome(False, error=exc)
    except Exception as exc:
        raise OracleFailure(f"decode raised {type(exc).__name__}", body) from None
    try:
        again = decode_message(encode_message(msg, profile), profile)
    except CodecError as exc:
        raise OracleFailure(f"a decoded message does not re-encode: {exc}", body) from None
    if again.mti != msg.mti or again.fields != msg.fields:
        raise OracleFailure("decode(encode(decode(x))) differs from decode(x)", body)
    last_is_64 = "64" in msg.fields and all(int(k) <= 64 for k in msg.fields)
    if last_is_64 and msg.mac_data != body[profile.prefix_len : -8]:
        raise OracleFailure("mac_data is not MTI..before field 64", body)
    return DecodeOutcome(True, message=msg)


def server_must_answer(body: bytes, profile: WireProfile) -> bool | None:
    """What SPEC §5.1 asks of the server for this well-framed body.

    ``True``: a reply is due (decodable request, or RC 30 with MTI, 11, 41, 42 readable); ``False``: a logged,
    counted close; ``None``: a decodable message that is not a request (a stray response), on which the
    SPEC is silent (no reply is possible; the connection may stay or close).
    """
    outcome = check_decode(body, profile)
    if outcome.ok:
        assert outcome.message is not None
        return True if is_request_mti(outcome.message.mti) else None
    assert outcome.error is not None
    partial = outcome.error.partial
    if not all(partial.get(k) for k in ("t", "11", "41", "42")) or not is_request_mti(partial["t"]):
        return False
    if profile.has_tpdu:
        try:
            Tpdu.parse(body[:5])
            CupHeader.parse(body[5:11])
        except ValueError:
            return False
    return True


# ---------------------------------------------------------------------------------------------- frames


def frame_stream(rng: random.Random, max_frame: int) -> bytes:
    """Frames with valid and (rarely) zero or oversize length prefixes, maybe a partial frame at the end."""
    out = bytearray()
    for _ in range(rng.randint(0, 8)):
        pick = rng.random()
        if pick < 0.05:
            out += b"\x00\x00"
        elif pick < 0.1:
            out += rng.randint(max_frame + 1, 0xFFFF).to_bytes(2, "big")
        else:
            n = rng.choice((1, 2, rng.randint(1, 64), rng.randint(1, max_frame)))
            out += n.to_bytes(2, "big") + rng.randbytes(n)
    if rng.random() < 0.3:
        out += rng.randbytes(rng.randint(1, 3))
    return bytes(out)


def reference_frames(stream: bytes, max_frame: int) -> tuple[list[bytes], bool, int]:
    """The frames a correct decoder yields for ``stream``: (frames, failed, bytes left buffered)."""
    frames: list[bytes] = []
    pos = 0
    while len(stream) - pos >= 2:
        n = int.from_bytes(stream[pos : pos + 2], "big")
        if n == 0 or n > max_frame:
            return frames, True, 0
        if pos + 2 + n > len(stream):
            break
        frames.append(stream[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return frames, False, len(stream) - pos


def split_points(rng: random.Random, n: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, n), k=min(n - 1, rng.randint(0, 10)))) if n > 1 else []
    return [0, *cuts, n]
