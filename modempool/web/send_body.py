"""The body of `POST /v1/messages`: what it may hold (`SendRequest`) and how it is read.

A small body (up to SMALL_BODY bytes: nearly every request) is read whole and validated by
the pydantic model, as FastAPI would. A bigger one, a batch of up to 100,000 numbers, is
parsed as it arrives (`SendParser`, on ijson's C backend): each number of `to` is packed into
one bytearray as it is read (`Recipients`, about 12 bytes a number), the other members are
kept as values and validated by the same model once the body has ended, in whatever order
they came. So the batch is never held as 100,000 Python strings, nor the body whole. Errors
are the problem documents the model gives (the same fields, the same words), a body that is
not JSON a 400; the body is read to its end first, so a body over `[http] max_body` is a 413
whatever it holds.

ijson rather than `json.JSONDecoder.raw_decode` on a buffer: raw_decode needs a whole value in
the buffer, and cannot tell a number cut by a chunk's end (`138001` + `38000`) from a whole
one, so the object's structure would need a tokenizer of our own around it; ijson is a
maintained incremental parser that is handed each chunk (`basic_parse_coro`) and parses a
1.5 MB batch in a few milliseconds.
"""

from __future__ import annotations

import codecs
import email.message
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import ijson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from modempool.web.middleware import BodyTooLarge

MAX_RECIPIENTS = 100_000
MAX_TEXT = 40_000          # 255 parts of 153 GSM characters, a little over
SMALL_BODY = 64 * 1024     # bytes read whole; a bigger body is parsed as it arrives
Number = Annotated[str, Field(min_length=1, max_length=40, examples=["13800138000"])]
_NUMBER = TypeAdapter(Number)   # a bad number's errors, in the model's words
_KEPT_ERRORS = 20               # bad numbers reported (the problem document shows 20)


class SendRequest(BaseModel):
    """One text to one or many numbers."""

    model_config = ConfigDict(extra="forbid")

    to: Number | Annotated[list[Number], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    at: datetime | None = Field(None, description="Not before this time (ISO 8601; naive = server local)")
    expires: datetime | None = Field(None, description="Give up if not sent by then")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher goes first")
    sims: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=512, description="Only through these SIMs (within the account's)")
    client_id: str | None = Field(None, min_length=1, max_length=200,
                                  description="Idempotency key; a retry returns the same messages")


#: The OpenAPI request body of the route, which reads its body itself.
REQUEST_BODY = {"required": True, "content": {"application/json": {
    "schema": SendRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}


class MalformedBody(Exception):
    """A body that is not JSON (or not UTF-8); the message says so, for a 400."""


class Recipients:
    """The numbers of a batch as they arrived, packed: each number's UTF-8 bytes after one
    byte of their length (a number is at most 40 characters, 160 bytes)."""

    def __init__(self) -> None:
        self._packed = bytearray()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, number: str) -> None:
        encoded = number.encode("utf-8", "surrogatepass")
        self._packed.append(len(encoded))
        self._packed += encoded
        self.count += 1

    def skip(self) -> None:
        """Count an item that is not kept (the batch is refused already)."""
        self.count += 1

    def chunks(self, size: int) -> Iterator[list[str]]:
        """The numbers in order, `size` at a time, each list made when asked for."""
        packed, position, chunk = self._packed, 0, []
        while position < len(packed):
            length = packed[position]
            chunk.append(packed[position + 1:position + 1 + length].decode("utf-8", "surrogatepass"))
            position += 1 + length
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass(frozen=True, slots=True)
class StreamedSend:
    """A big body, read: its members but `to` validated by the model (`request`, whose `to`
    is a stand-in when `to` was a list), and `to`'s numbers (`recipients`; None when `to` was
    one number, then in `request.to`)."""

    request: SendRequest
    recipients: Recipients | None


class _SurrogateEscapes:
    """Finds a `\\uD800`-`\\uDFFF` escape that is not one half of a pair, which ijson's C
    backend reads as "?" (json.loads keeps it, and the text check refuses it): such a body is
    refused rather than sent changed. Fed the raw chunks; an escape cut by a chunk's end is
    carried to the next. Looks only at backslashes, left to right, so an escaped backslash
    (`\\\\ud800`, text) is never taken for an escape."""

    def __init__(self) -> None:
        self._carry = b""
        self._start = 0   # the body's offset of the carried bytes

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Looks at `chunk`; `final`: it is the body's end (nothing carried further)."""
        data, start = self._carry + chunk, self._start
        position, self._carry = 0, b""
        while (position := data.find(b"\\", position)) >= 0:
            if data[position + 1:position + 2] != b"u":
                if position + 1 == len(data):
                    break   # a backslash at the chunk's end: what it escapes comes next
                position += 2
                continue
            unit = _hex(data[position + 2:position + 6])
            if unit is None or not 0xD800 <= unit <= 0xDFFF:
                if len(data) < position + 6:
                    break
                position += 2   # any other escape, or not JSON (ijson says so)
                continue
            if unit <= 0xDBFF:
                if len(data) < position + 12 and not final:
                    break
                low = _hex(data[position + 8:position + 12])
                if data[position + 6:position + 8] == b"\\u" and low is not None and 0xDC00 <= low <= 0xDFFF:
                    position += 12
                    continue
            raise MalformedBody(f"the request body holds a lone UTF-16 surrogate "
                                f"(\\u{unit:04x} at offset {start + position}); texts must be "
                                f"valid Unicode")
        else:
            self._start = start + len(data)
            return
        self._carry, self._start = data[position:], start + position


def _hex(digits: bytes) -> int | None:
    if len(digits) != 4:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


class SendParser:
    """Reads a send's body as it arrives (sans I/O): `feed(bytes)` each chunk, then
    `finish()` for the `StreamedSend`, or RequestValidationError (the model's errors) or
    MalformedBody."""

    def __init__(self) -> None:
        self._events = ijson.sendable_list()
        # Numbers as ijson gives them (int, else Decimal), made floats below as json.loads
        # makes them: its use_float mode overflows on integers past 64 bits.
        self._parser = ijson.basic_parse_coro(self._events)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0             # bytes fed so far
        self._depth = 0              # of the event being handled, within the body's value
        self._object: bool | None = None   # whether the body is a JSON object
        self._key: str | None = None       # the member whose value is being read
        self._value: Any = None            # an ijson.ObjectBuilder of a member but `to`'s list
        self._members: dict[str, Any] = {}
        self._recipients: Recipients | None = None   # `to` as a list
        self._bad: list[tuple[int, Any]] = []        # (index, value) of numbers that are not
        self._surrogates = _SurrogateEscapes()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return   # ijson would take an empty chunk for the body's end
        pending = len(self._utf8.getstate()[0])   # an unfinished character from the last chunk
        try:
            self._utf8.decode(chunk)
        except UnicodeDecodeError as exc:   # exc.object: the pending bytes and this chunk
            raise MalformedBody(f"the request body is not valid UTF-8 (byte "
                                f"0x{exc.object[exc.start]:02x} at offset "
                                f"{self._offset - pending + exc.start})") from None
        self._surrogates.feed(chunk)
        self._offset += len(chunk)
        self._parse(chunk)

    def finish(self) -> StreamedSend:
        self._surrogates.feed(b"", final=True)
        self._parse(None)
        if not self._object:   # the model's error for a body that is no object
            raise _invalid(_errors_of(lambda: SendRequest.model_validate([])))
        members, errors = dict(self._members), []
        if self._recipients is not None:
            errors = self._to_errors()
            members["to"] = "0"   # stands in: the numbers were checked one by one
        found = _errors_of(lambda: SendRequest.model_validate(members))
        errors += [e for e in found if self._recipients is None or e["loc"][:1] != ("to",)]
        if errors:
            raise _invalid(errors)
        return StreamedSend(SendRequest.model_validate(members), self._recipients)

    # ---- the events ----------------------------------------------------------------------

    def _parse(self, chunk: bytes | None) -> None:
        try:
            if chunk is None:
                self._parser.close()
            else:
                self._parser.send(chunk)
        except (ijson.JSONError, ValueError, SystemError) as exc:   # SystemError: how ijson
            # passes on Python's limit on an integer's digits
            reason = exc.args[0] if exc.args else ""
            if isinstance(exc, SystemError):
                reason = "a number with more digits than can be read"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            first = str(reason).strip().splitlines()[0] if str(reason).strip() else "cut short"
            raise MalformedBody(f"the request body is not valid JSON ({first})") from None
        for event, value in self._events:
            self._event(event, float(value) if isinstance(value, Decimal) else value)
        del self._events[:]

    def _event(self, event: str, value: Any) -> None:
        opens, closes = event in ("start_map", "start_array"), event in ("end_map", "end_array")
        if closes:
            self._depth -= 1
        depth = self._depth   # 0: the body's value; 1: its members; 2: within a member
        if opens:
            self._depth += 1
        if depth == 0:
            if self._object is None:
                self._object = event == "start_map"
        elif not self._object:
            pass   # the model refuses the body whatever it holds
        elif self._value is not None:   # within a member's list or object
            self._value.event(event, value)
            if depth == 1:
                self._member(self._value.value)
        elif depth == 1 and event == "map_key":
            self._key = value
        elif depth == 1 and closes:
            pass   # the end of `to`'s list
        elif depth == 1 and self._key == "to" and event == "start_array":
            self._recipients, self._bad = Recipients(), []
            self._members.pop("to", None)
        elif depth == 1:
            self._value = ijson.ObjectBuilder()
            self._value.event(event, value)
            if not opens:
                self._member(self._value.value)
        elif depth == 2 and not closes:
            self._number(event, value)

    def _member(self, value: Any) -> None:
        self._members[self._key] = value
        self._value = None
        if self._key == "to":   # a later `to` replaces an earlier list, as in json.loads
            self._recipients = None

    def _number(self, event: str, value: Any) -> None:
        """An item of `to`'s list: kept while the batch can still be sent, else counted (and,
        when it is no number, reported)."""
        recipients, index = self._recipients, self._recipients.count
        good = event == "string" and 1 <= len(value) <= 40
        if good and not self._bad and index < MAX_RECIPIENTS:
            recipients.add(value)
            return
        recipients.skip()
        if not good and len(self._bad) < _KEPT_ERRORS:
            self._bad.append((index, {"start_map": {}, "start_array": []}.get(event, value)))

    def _to_errors(self) -> list[dict[str, Any]]:
        """The model's errors for `to` as a list (a union: the plain-string reading's error
        comes first, as pydantic gives it)."""
        count = self._recipients.count
        errors: list[dict[str, Any]] = []
        if count == 0:
            errors.append({"type": "too_short", "loc": ("to",), "input": [],
                           "msg": "List should have at least 1 item after validation, not 0"})
        elif count > MAX_RECIPIENTS:
            errors.append({"type": "too_long", "loc": ("to",), "input": [],
                           "msg": f"List should have at most {MAX_RECIPIENTS} items after "
                                  f"validation, not {count}"})
        for index, value in self._bad:
            errors += [{**e, "loc": ("to", index)} for e in _errors_of(lambda: _NUMBER.validate_python(value))]
        if errors:
            errors.insert(0, {"type": "string_type", "loc": ("to",), "input": [],
                              "msg": "Input should be a valid string"})
        return errors


def _errors_of(validate: Any) -> list[dict[str, Any]]:
    try:
        validate()
    except ValidationError as exc:
        return exc.errors()
    return []


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    """The model's errors as FastAPI raises them for a body (each located under `body`)."""
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


# ---- reading the request -----------------------------------------------------------------


async def read_send(request: Request) -> SendRequest | StreamedSend:
    """The send a request's body asks for: a small body validated whole (`SendRequest`), a
    big one parsed as it arrives (`StreamedSend`). RequestValidationError or MalformedBody
    for a body that is not a valid send; HTTPException 413 past `[http] max_body`."""
    chunks = _body(request)
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) > SMALL_BODY:
            break
    else:
        return whole_body(bytes(head), request.headers.get("content-type"))
    if not _is_json(request.headers.get("content-type")):
        await _drain(chunks)
        return whole_body(bytes(head), request.headers.get("content-type"))
    parser = SendParser()
    try:
        parser.feed(bytes(head))
        del head
        async for chunk in chunks:
            parser.feed(chunk)
    except MalformedBody:
        await _drain(chunks)   # the body is read to its end: over the limit, a 413 it is
        raise
    return parser.finish()


def whole_body(body: bytes, content_type: str | None) -> SendRequest:
    """A small body, as FastAPI reads a model's: JSON when the content type says so, the
    model's errors (under `body`) otherwise."""
    data: Any = body
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required",
                                       "input": None}])
    if _is_json(content_type):
        try:
            data = json.loads(body)
        except UnicodeDecodeError as exc:
            raise MalformedBody(f"the request body is not valid UTF-8 (byte "
                                f"0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
        except (ValueError, RecursionError):
            raise MalformedBody("the request body is not valid JSON") from None
    try:
        return SendRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc.errors()) from None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The body's chunks; past `[http] max_body` the middleware has answered 413 already
    (what the route answers then is dropped)."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except BodyTooLarge:
        raise HTTPException(413, "the request body is larger than the limit ([http] max_body)") from None
    except ClientDisconnect:
        raise HTTPException(400, "the client closed the connection before the body's end") from None


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass
