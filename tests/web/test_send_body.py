"""The send body's incremental parser alone (sans I/O): whatever the chunks' boundaries and the
members' order, it reads what `json.loads` and the model read, and refuses what the model
refuses with the same errors."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from modempool.web.send_body import (MalformedBody, SendParser, SendRequest, whole_body)

numbers = st.lists(st.text(alphabet="0123456789+ -()", min_size=1, max_size=40), min_size=1,
                   max_size=300)
members = st.fixed_dictionaries({"text": st.text(min_size=1, max_size=50)}, optional={
    "priority": st.integers(-1000, 1000), "client_id": st.text(min_size=1, max_size=20),
    "sims": st.lists(st.sampled_from(["m1", "m2"]), max_size=2),
    "at": st.just("2099-01-01T00:00:00Z")})


def parsed(body: bytes, cuts: list[int]):
    parser = SendParser()
    edges = [0, *sorted(c % (len(body) + 1) for c in cuts), len(body)]
    for start, end in zip(edges, edges[1:]):
        parser.feed(body[start:end])
    return parser.finish()


def errors_of(call) -> list[tuple[tuple, str]]:
    with pytest.raises(RequestValidationError) as refused:
        call()
    return [(tuple(e["loc"]), e["msg"]) for e in refused.value.errors()]


@given(numbers, members, st.integers(0, 10**6), st.lists(st.integers(0, 10**6), max_size=30))
@settings(max_examples=150, deadline=None)
def test_any_chunking_and_order_reads_what_the_model_reads(to, others, order, cuts):
    items = list({"to": to, **others}.items())
    place = order % len(items)
    items.insert(place, items.pop(0))   # `to` anywhere among the members
    body = json.dumps(dict(items), ensure_ascii=order % 2 == 0).encode()
    got = parsed(body, cuts)
    expected = SendRequest.model_validate(json.loads(body))
    assert [n for chunk in got.recipients.chunks(7) for n in chunk] == expected.to
    assert got.request.model_dump(exclude={"to"}) == expected.model_dump(exclude={"to"})


@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.booleans(), st.just(""), st.just("9" * 41),
                          st.just([1]), st.just({"a": 1}), st.just("13800138000")),
                min_size=1, max_size=40).filter(lambda to: set(map(str, to)) != {"13800138000"}),
       st.lists(st.integers(0, 10**6), max_size=10))
@settings(max_examples=100, deadline=None)
def test_bad_numbers_get_the_models_errors(to, cuts):
    body = json.dumps({"text": "x", "to": to}).encode()
    mine = errors_of(lambda: parsed(body, cuts))
    theirs = errors_of(lambda: whole_body(body, "application/json"))
    # pydantic names the union's branches in its locations; the problem documents drop them,
    # and show the first 20 errors
    plain = [(tuple(p for p in loc if not any(c in str(p) for c in "[-")), msg) for loc, msg in theirs]
    assert mine[:20] == list(dict.fromkeys(plain))[:20]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False) | st.just("2099-01-01T00:00:00Z"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


@given(st.dictionaries(st.sampled_from(["text", "at", "expires", "priority", "sims", "client_id",
                                        "prio"]), json_values, max_size=7),
       st.lists(st.integers(0, 10**6), max_size=10))
@settings(max_examples=150, deadline=None)
def test_the_other_members_get_the_models_errors(others, cuts):
    body = json.dumps({"to": ["13800138000"], **others}).encode()
    try:
        expected = whole_body(body, "application/json")
    except RequestValidationError:
        assert errors_of(lambda: parsed(body, cuts)) == errors_of(
            lambda: whole_body(body, "application/json"))
    else:
        got = parsed(body, cuts).request
        assert got.model_dump(exclude={"to"}) == expected.model_dump(exclude={"to"})


def test_a_batch_is_kept_packed():
    body = json.dumps({"to": [f"13{i:09d}" for i in range(100_000)], "text": "x"}).encode()
    got = parsed(body, list(range(0, len(body), 65_536)))
    assert len(got.recipients) == 100_000
    assert len(got.recipients._packed) == 100_000 * 12   # one length byte and 11 digits each


@pytest.mark.parametrize("body, detail", [
    (b'{"to": ["1"], "text": "x"', "not valid JSON"),
    (b'{"to": ["1"], "text": "x"}{', "not valid JSON"),
    (b'{"to": ["1"], "text": "\xe4\xbd"}', "not valid UTF-8 (byte 0xe4 at offset 23)"),
])
def test_a_body_that_is_not_json_is_malformed(body, detail):
    with pytest.raises(MalformedBody, match=detail.replace("(", r"\(").replace(")", r"\)")):
        parsed(body, [5, 20, 24])


def test_a_later_member_replaces_an_earlier_one_as_in_json_loads():
    body = b'{"to": ["13800138000", 5], "text": "a", "to": ["13800138001"], "text": "b"}'
    got = parsed(body, [9, 30])
    assert [n for chunk in got.recipients.chunks(10) for n in chunk] == ["13800138001"]
    assert got.request.text == "b"
    one = parsed(b'{"to": ["13800138000"], "to": "13800138002", "text": "c"}', [])
    assert one.recipients is None and one.request.to == "13800138002"


@pytest.mark.parametrize("text", ["\\ud800", "a\\udc00", "\\ud83d x", "\\ud83d\\u0041", "\\ude00\\ud83d"])
def test_a_lone_surrogate_escape_is_refused_not_read_as_a_question_mark(text):
    # ijson's C backend reads a lone surrogate as "?": the message would go out changed
    body = b'{"to": ["13800138000"], "text": "' + text.encode() + b'"}'
    for cut in range(len(body)):
        with pytest.raises(MalformedBody, match="lone UTF-16 surrogate"):
            parsed(body, [cut])


@pytest.mark.parametrize("text, read", [("\\ud83d\\ude00", "\U0001f600"), ("\\\\ud800", "\\ud800"),
                                        ("\\\\\\ud83d\\ude00", "\\\U0001f600")])
def test_a_surrogate_pair_and_an_escaped_backslash_are_text(text, read):
    body = b'{"to": ["13800138000"], "text": "' + text.encode() + b'"}'
    for cut in range(len(body)):
        assert parsed(body, [cut]).request.text == read


def test_an_integer_past_pythons_digit_limit_is_malformed_not_an_error():
    body = b'{"to": ["13800138000"], "text": "x", "priority": 1' + b"0" * 5000 + b"}"
    with pytest.raises(MalformedBody, match="not valid JSON"):
        parsed(body, [100, 3000])
