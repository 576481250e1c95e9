"""The one float formatter and NaN-aware equality, against prometheus_client and Python."""

from __future__ import annotations

import json
import math
import struct

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from kpexporter.promtext.floats import (
    format_go_float,
    format_value,
    json_number,
    non_finite,
    same_number,
)

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10**20, 10**20),
    st.sampled_from([0.0, -0.0, 1e6, 1234567.0, 1e16, 1.7140402714546502e9, 5e-324,
                     1.7976931348623157e308, True, False]),
)


@given(FLOATS)
def test_format_value_is_prometheus_clients(value: float) -> None:
    assert format_value(value) == floatToGoString(value)
    assert format_value(value) == floatToGoString(value)  # the memo gives the same answer


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_value_reads_back_to_the_same_double(value: float) -> None:
    assert struct.pack("<d", float(format_value(value))) == struct.pack("<d", value)


def test_format_value_memo_is_bounded() -> None:
    from kpexporter.promtext import floats
    for i in range(floats._FORMATTED.limit * 3):
        format_value(i + 0.5)
    assert len(floats._FORMATTED) <= floats._FORMATTED.limit


def test_non_finite_and_json() -> None:
    assert [non_finite(v) for v in (math.nan, math.inf, -math.inf, 0.0, 1.5)] == [
        "NaN", "+Inf", "-Inf", None, None]
    values = [json_number(v) for v in (math.nan, math.inf, -math.inf, 2.5, None)]
    assert json.loads(json.dumps(values, allow_nan=False)) == ["NaN", "+Inf", "-Inf", 2.5, None]


def test_format_go_float_shares_the_non_finite_words() -> None:
    assert [format_go_float(v) for v in (math.nan, math.inf, -math.inf)] == [
        "NaN", "+Inf", "-Inf"]


@given(FLOATS, FLOATS)
def test_same_number_is_equality_with_nan_equal_to_nan(a: float, b: float) -> None:
    nan_a, nan_b = a != a, b != b
    assert same_number(a, b) == ((nan_a and nan_b) or (not nan_a and not nan_b and a == b))
    assert same_number(a, a)
