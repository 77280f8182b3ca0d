from hypothesis import given
from hypothesis import strategies as st

from batchtts.api.ids import id_digest, new_run_token, request_id_for
from batchtts.api.request import is_valid_id


@given(st.text(max_size=400), st.integers(min_value=1, max_value=10_000))
def test_request_ids_always_fit_the_api_pattern(row_id: str, attempt: int) -> None:
    rid = request_id_for(row_id, new_run_token(), attempt)
    assert is_valid_id(rid), rid
    assert rid.endswith(f".{attempt}")
    assert id_digest(row_id) in rid


def test_request_id_is_readable_for_plain_ids() -> None:
    assert request_id_for("chapter-01", "abc123", 2).startswith("chapter-01.")
    assert request_id_for("a/b", "abc123", 1) != request_id_for("a?b", "abc123", 1)
