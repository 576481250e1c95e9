"""The bounded memo: never more than ``limit`` entries, whatever is stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpexporter.memo import Memo


@given(st.integers(1, 20), st.lists(st.tuples(st.integers(0, 40), st.integers())))
def test_never_more_than_limit_and_the_latest_value_is_kept(
        limit: int, puts: list[tuple[int, int]]) -> None:
    memo: Memo[int, int] = Memo(limit)
    for key, value in puts:
        assert memo.put(key, value) == value
        assert memo.get(key) == value
        assert len(memo) <= limit


def test_a_full_memo_is_emptied_before_a_new_key_but_not_for_a_known_one() -> None:
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.put("b", 3)  # known key: an update, nothing forgotten
    assert dict(memo) == {"a": 1, "b": 3}
    memo.put("c", 4)
    assert dict(memo) == {"c": 4}


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Memo(0)
