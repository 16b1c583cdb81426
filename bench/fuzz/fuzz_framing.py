"""atheris harness: the CorpLink frame decoder (docs/protocol.md §1), run on purpose.

    pip install atheris
    python bench/fuzz/fuzz_framing.py -atheris_runs=1000000          # or -max_total_time=600

Properties checked on every input (the input's first byte picks the body
limit and how the stream is cut into reads):

- ``FrameDecoder.feed`` raises nothing but ``FrameError``, and after one it
  raises the same error for every later feed (the stream lost its framing);
- every body it returns is 1..max_body bytes, and re-encoding the bodies
  gives back exactly the bytes consumed so far (nothing invented or lost);
- it never holds more than one partial frame: ``buffered`` ≤ max_body + 8;
- ``parse_header`` agrees with the decoder on the first 8 bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# Run from a checkout: import this tree's gateway, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from gateway.net.framing import (
        HEADER_LEN,
        FrameDecoder,
        FrameError,
        encode_frame,
        parse_header,
    )

LIMITS = (1, 8, 64, 1000, 1_048_576)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data)
    max_body = LIMITS[fdp.ConsumeIntInRange(0, len(LIMITS) - 1)]
    chunk = fdp.ConsumeIntInRange(1, 64)
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())

    decoder = FrameDecoder(max_body)
    bodies: list[bytes] = []
    fed = 0
    error: FrameError | None = None
    for start in range(0, len(stream), chunk):
        piece = stream[start : start + chunk]
        try:
            bodies += decoder.feed(piece)
        except FrameError as exc:
            error = exc
            break
        fed += len(piece)
        if decoder.buffered > max_body + HEADER_LEN:
            raise AssertionError(f"decoder holds {decoder.buffered} bytes, limit {max_body}")
    for body in bodies:
        if not 1 <= len(body) <= max_body:
            raise AssertionError(f"body of {len(body)} bytes with limit {max_body}")
    consumed = b"".join(encode_frame(b) for b in bodies)
    if stream[: len(consumed)] != consumed:
        raise AssertionError("re-encoded bodies differ from the bytes consumed")
    if error is not None:
        try:
            decoder.feed(b"00000001x")
        except FrameError as again:
            if again.reason != error.reason:
                raise AssertionError("a broken stream changed its error") from None
        else:
            raise AssertionError("a broken stream accepted more bytes")
    elif decoder.at_boundary and fed == len(stream) and len(consumed) != len(stream):
        raise AssertionError("at a boundary with unconsumed bytes")
    if len(stream) >= HEADER_LEN:
        try:
            length = parse_header(stream[:HEADER_LEN], max_body)
        except FrameError:
            if bodies:
                raise AssertionError("decoder accepted a header parse_header refuses") from None
        else:
            if bodies and len(bodies[0]) != length:
                raise AssertionError("decoder and parse_header disagree on the length")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
