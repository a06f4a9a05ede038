"""DDSketch quantile sketches serialised as base64 protobuf for table values.

The protobuf form keeps the index mapping and every bin, so a sketch read
back merges with another exactly. It keeps no sum, so callers track sums.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

# Quantiles are within 1 % of a value of the exact rank (DDSketch's
# relative-accuracy guarantee, ddsketch 3.0.1).
RELATIVE_ACCURACY = 0.01


def new() -> DDSketch:
    return DDSketch(relative_accuracy=RELATIVE_ACCURACY)


def decode(encoded: str | None) -> DDSketch:
    """Return the sketch of a stored value; None decodes to an empty sketch."""
    if encoded is None:
        return new()
    message = DDSketchMessage()
    message.ParseFromString(base64.b64decode(encoded))
    # ddsketch's protobuf helpers carry no type annotations.
    sketch: DDSketch = DDSketchProto.from_proto(message)  # type: ignore[no-untyped-call]
    return sketch


def encode(sketch: DDSketch) -> str:
    proto = DDSketchProto.to_proto(sketch)  # type: ignore[no-untyped-call]
    raw: bytes = proto.SerializeToString()
    return base64.b64encode(raw).decode("ascii")


def add(encoded: str | None, value: float) -> str:
    """Return the stored sketch with one more value."""
    sketch = decode(encoded)
    sketch.add(value)
    return encode(sketch)


def merge(first: str | None, second: str | None) -> str | None:
    """Return the sketch of both sketches' values."""
    if first is None or second is None:
        return first if second is None else second
    sketch = decode(first)
    sketch.merge(decode(second))
    return encode(sketch)


def quantiles(encoded: str | None, requested: Mapping[str, float]) -> dict[str, float]:
    """Return each named quantile of the sketch; empty when it has no values."""
    sketch = decode(encoded)
    if sketch.count == 0:
        return {}
    values: dict[str, float] = {}
    for name, quantile in requested.items():
        value = sketch.get_quantile_value(quantile)
        if value is not None:
            values[name] = float(value)
    return values
