"""Text enters only as UTF-8: the path, the query, the headers the API reads, every form part.

The query holds no control characters either (422 ``invalid_input``).

Starlette decodes what is not UTF-8 as Latin-1 (form parts, header values) or with
U+FFFD in place of each bad byte (the path, the query), so a wrong byte would be stored as
other letters. The bytes are checked here, before anything decodes them, and a request
carrying such text is answered 422 ``invalid_encoding`` naming where the text was.
JSON bodies are checked where they are read (:mod:`.bodies`).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

from python_multipart import MultipartParser, QuerystringParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartState, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from congvan.states.errors import InvalidEncoding, InvalidInput, RepeatedField
from congvan.states.text import control_characters

from .errors import ErrorResponse

# Headers the API reads as text; HTTP header values are ASCII (RFC 9110 5.5).
READ_HEADERS = {
    b"authorization": "Authorization",
    b"content-type": "Content-Type",
    b"idempotency-key": "Idempotency-Key",
    b"if-match": "If-Match",
    b"if-none-match": "If-None-Match",
}
_UTF8 = "utf-8"


def _text(data: bytes, *, field: str, location: str) -> str:
    try:
        return data.decode(_UTF8)
    except UnicodeDecodeError as exc:
        raise InvalidEncoding(
            f"The {location} {field!r} is not UTF-8 text.", field=field, location=location
        ) from exc


def _name(data: bytes) -> str:
    """A name to show in a message, whatever its bytes."""
    return unquote_to_bytes(data.replace(b"+", b" ")).decode(_UTF8, "replace")


def check_field(name: bytes, value: bytes, location: str) -> list[str]:
    """A percent-encoded ``name=value`` pair (a query or a urlencoded form) is UTF-8;
    returns the name and the value as text."""
    field = _name(name)
    return [
        _text(unquote_to_bytes(data.replace(b"+", b" ")), field=field, location=location)
        for data in (name, value)
    ]


def _one_line(texts: list[str], *, field: str, location: str) -> None:
    """No control character in a query: no filter or cursor holds one, and PostgreSQL
    refuses NUL in any text it is compared with. (A path holding one names nothing: each
    route answers 404 for an id no row can have.)"""
    found = [c for text in texts for c in control_characters(text, multi_line=False)]
    if found:
        raise InvalidInput(
            f"The {location} {field!r} holds control characters ({', '.join(found[:5])}).",
            field=field,
            location=location,
        )


def _composed(pair: bytes, texts: list[str]) -> bytes:
    """A query's ``name=value`` pair with its text in NFC (the pair as sent if it was)."""
    nfc = [unicodedata.normalize("NFC", text) for text in texts]
    if nfc == texts:
        return pair
    name, value = (quote_plus(text, safe="") for text in nfc)
    return f"{name}={value}".encode("ascii")


# Where ``check_target`` leaves what is wrong with the query, for the route to answer once
# it knows its caller (``parameters.check_parameters``): one without a valid token learns
# nothing of what the route takes, as for any other parameter.
QUERY_PROBLEM = "congvan.query_problem"


def check_target(scope: Scope) -> None:
    """The path, the query string and the headers read.

    What is wrong with the path or a header is raised at once; with the query, it is kept
    in the scope (``QUERY_PROBLEM``) and the query emptied.
    """
    raw_path = scope.get("raw_path")
    if raw_path is not None:  # a server that gives only the decoded path already chose
        path = unquote_to_bytes(raw_path)
        _text(path, field=path.decode(_UTF8, "replace"), location="path")
    try:
        _check_query(scope)
    except InvalidInput as exc:
        scope[QUERY_PROBLEM] = exc
        scope["query_string"] = b""
    _check_headers(scope)


def _check_query(scope: Scope) -> None:
    query: bytes = scope.get("query_string", b"")
    # Text is kept in Unicode NFC, and what a query filters on is compared with it: a name
    # typed decomposed (macOS, some input methods) finds what it names. A query of plain
    # ASCII holds nothing to compose.
    composing = not query.isascii() or b"%" in query
    composed = []
    for pair in query.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            texts = check_field(name, value, "query parameter")
            _one_line(texts, field=texts[0], location="query parameter")
            if composing:
                composed.append(_composed(pair, texts))
    if composing:
        scope["query_string"] = b"&".join(composed)


def _check_headers(scope: Scope) -> None:
    for name, value in scope.get("headers", ()):
        header = READ_HEADERS.get(name.lower())
        if header is not None and not value.isascii():
            raise InvalidEncoding(
                f"The header {header} is not ASCII text.", field=header, location="header"
            )
        if header == "Content-Type":
            _parameters_once(header, value, "header")
            media_type, options = parse_options_header(value)
            charset = options.get(b"charset")
            # A charset speaks of text only: a package (application/zip; charset=binary,
            # as `file --mime` says of one) or a PDF is bytes, whatever it declares.
            if charset is not None and _read_as_text(media_type) and not _is_utf8(charset):
                raise InvalidEncoding(
                    "Text is read as UTF-8 only; the request declares another charset.",
                    field=header,
                    location="header",
                    charset=charset.decode("latin-1"),
                )


def _read_as_text(media_type: bytes) -> bool:
    """Whether a body of ``media_type`` is read as text: JSON, a form, text."""
    kind = media_type.lower()
    return (
        kind.startswith((b"text/", b"multipart/"))
        or kind in (b"application/json", b"application/x-www-form-urlencoded")
        or kind.endswith(b"+json")
    )


def _utf8_or_none(content_type: bytes) -> bool:
    """Whether a Content-Type declares no charset, or UTF-8."""
    charset = parse_options_header(content_type)[1].get(b"charset")
    return charset is None or _is_utf8(charset)


def _is_utf8(charset: bytes) -> bool:
    try:
        return codecs.lookup(charset.decode("latin-1")).name == _UTF8
    except LookupError:
        return False


# What a part's Content-Transfer-Encoding may say: its bytes are the bytes meant.
_IDENTITY = frozenset({b"binary", b"8bit", b"7bit"})
# One parameter of a header (RFC 9110 5.6.6): ; name = token or "quoted string".
_PARAMETER = re.compile(rb';\s*([^\s;=]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;]*))?')


def _parameters_once(header: str, value: bytes, location: str = "form part header") -> None:
    """Refuse a header giving a parameter twice (name, filename, charset; the request's
    boundary or charset): parsers disagree on which one counts, so a filter in front would
    judge another file name, field, part or text than the app."""
    seen: set[bytes] = set()
    for match in _PARAMETER.finditer(value):
        parameter = match.group(1).lower()
        if parameter in seen:
            label = parameter.decode("latin-1")[:40]
            raise RepeatedField(
                f"The {location} {header} gives its parameter {label} twice; give it once.",
                field=f"{header}: {label}",
                location=location,
            )
        seen.add(parameter)


class _FormCheck:
    """Feeds a multipart/form-data body through a parser of its own, part by part."""

    def __init__(self, boundary: bytes) -> None:
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )
        self._begin()

    def _begin(self) -> None:
        self.header = [b"", b""]
        self.named: set[bytes] = set()  # the part's header names so far, in lower case
        self.disposition = b""
        self.field = "a part"
        self.decoder: codecs.IncrementalDecoder | None = None
        self.unnamed = False  # a file part named filename=""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header[0] += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header[1] += data[start:end]

    def _header_end(self) -> None:
        name, value = self.header[0].lower(), self.header[1]
        self.header = [b"", b""]
        if name in self.named:
            # Parsers disagree on which one counts (Starlette: the last disposition, the
            # first media type): a filter in front would judge another part than the app.
            label = name.decode("latin-1").title()
            raise RepeatedField(
                f"A form part gives its header {label} twice; it is taken once.",
                field=label,
                location="form part header",
            )
        self.named.add(name)
        if name in (b"content-disposition", b"content-type"):
            _parameters_once(name.decode("latin-1").title(), value)
        if name == b"content-disposition":
            # The part's name and file name: UTF-8, as browsers send them.
            _text(value, field="Content-Disposition", location="form part header")
            self.disposition = value
        elif name == b"content-type" and not _utf8_or_none(value):
            raise InvalidEncoding(
                "Text is read as UTF-8 only; a form part declares another charset.",
                field="Content-Type",
                location="form part header",
            )
        elif name == b"content-transfer-encoding" and value.strip().lower() not in _IDENTITY:
            # RFC 7578 4.7: a form's parts are sent as they are; a part in base64 or
            # quoted-printable would be stored as its encoded text, not what was meant.
            raise InvalidInput(
                "A form part is sent as it is: Content-Transfer-Encoding "
                f"{value.decode('latin-1')[:40]!r} is not read (RFC 7578); send the bytes "
                "themselves.",
                field="Content-Transfer-Encoding",
                location="form part header",
            )
        elif not value.isascii():
            label = name.decode("latin-1")
            raise InvalidEncoding(
                f"A form part's header {label} is not ASCII text.",
                field=label,
                location="form part header",
            )

    def _headers_finished(self) -> None:
        options = parse_options_header(self.disposition)[1]
        self.field = options.get(b"name", b"").decode(_UTF8)
        if b"filename" not in options and _FILENAME_STAR.search(self.disposition):
            # RFC 7578 4.2: a form names its file in filename="…" (UTF-8), never filename*;
            # read as text, the file's bytes would be refused as "not UTF-8 text".
            raise InvalidInput(
                f"The form part {self.field!r} names its file with filename*, which a form "
                'does not use (RFC 7578): send filename="…" in UTF-8.',
                field=self.field,
                location="form part header",
            )
        # A file part whose name is empty (filename="", which the options parser may drop,
        # and whose bytes would then be read as text): refused once it carries a byte. A
        # browser sends a file input left empty so, with nothing in it: that one passes.
        self.unnamed = not options.get(b"filename") and bool(_FILENAME.search(self.disposition))
        if b"filename" not in options and not self.unnamed:  # a text part
            self.decoder = codecs.getincrementaldecoder(_UTF8)()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.unnamed and end > start:
            raise InvalidInput(
                f"The form part {self.field!r} is a file with an empty name: give the file's "
                'name, filename="1227.pdf".',
                field=self.field,
                location="form part header",
            )
        if self.decoder is not None:
            self._decode(data[start:end])

    def _end(self) -> None:
        if self.decoder is not None:
            self._decode(b"", final=True)

    def _decode(self, data: bytes, *, final: bool = False) -> None:
        assert self.decoder is not None
        try:
            self.decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise InvalidEncoding(
                f"The form part {self.field!r} is not UTF-8 text (a part without a file "
                'name is text; a file is sent with its name, filename="1227.pdf").',
                field=self.field,
                location="form part",
            ) from exc

    def feed(self, data: bytes) -> None:
        self.parser.write(data)

    def close(self) -> None:
        self.parser.finalize()
        # python-multipart's finalize does not yet check the body ended (its own TODO), so
        # a body cut short would lose its last part without a word.
        if self.parser.state != MultipartState.END:
            raise InvalidInput(
                "The multipart body ends before its closing boundary: a part was cut short.",
                field="body",
                location="body",
            )


class _UrlencodedCheck:
    """Feeds an application/x-www-form-urlencoded body through a parser of its own."""

    def __init__(self) -> None:
        self.pair = [b"", b""]
        self.parser = QuerystringParser(
            {
                "on_field_start": self._start,
                "on_field_name": lambda data, start, end: self._add(0, data[start:end]),
                "on_field_data": lambda data, start, end: self._add(1, data[start:end]),
                "on_field_end": self._end,
            }
        )

    def _start(self) -> None:
        self.pair = [b"", b""]

    def _add(self, index: int, data: bytes) -> None:
        self.pair[index] += data

    def _end(self) -> None:
        name, value = self.pair
        if not (name.isascii() and value.isascii()):
            # What the form's parser does not percent-decode it reads as Latin-1: UTF-8
            # sent raw would be stored as other letters.
            raise InvalidEncoding(
                f"The form field {_name(name)!r} is not percent-encoded, as a urlencoded form "
                "must be.",
                field=_name(name),
                location="form field",
            )
        check_field(name, value, "form field")

    def feed(self, data: bytes) -> None:
        self.parser.write(data)

    def close(self) -> None:
        self.parser.finalize()


def _content_coding(scope: Scope) -> str | None:
    """The content coding a body says it is sent in, unless none (or ``identity``)."""
    codings = [v for k, v in scope.get("headers", ()) if k == b"content-encoding"]
    named = b",".join(codings).decode("latin-1").strip().lower()
    return None if named in ("", "identity") else named[:100]


def _coded(coding: str) -> ErrorResponse:
    """Bodies are read as sent: one in a content coding (gzip...) would be taken for its
    compressed bytes, a package refused as not a ZIP for good. 415, as RFC 9110 15.5.16."""
    body = {
        "code": "unsupported_media_type",
        "message": "Bodies are taken as they are: send it without a Content-Encoding.",
        "details": {"content_encoding": coding},
    }
    return ErrorResponse(body, status_code=415, headers={"Accept-Encoding": "identity"})


def _body_check(scope: Scope) -> _FormCheck | _UrlencodedCheck | None:
    content_type = dict(scope.get("headers", ())).get(b"content-type")
    kind, options = parse_options_header(content_type)
    if kind == b"multipart/form-data" and options.get(b"boundary"):
        try:
            return _FormCheck(options[b"boundary"])
        except FormParserError:
            # A boundary the parser will not take (longer than 256 bytes): nothing to check
            # here. A route that reads a form refuses it with its own parser (400
            # ``bad_request``); any other route never reads the body as a form.
            return None
    if kind == b"application/x-www-form-urlencoded":
        return _UrlencodedCheck()
    return None  # JSON is checked where it is read; other bodies are bytes


# A file name given as filename= (empty, when the options parser did not keep it).
_FILENAME = re.compile(rb";\s*filename\s*=", re.IGNORECASE)
# A file name given as filename*= (RFC 5987), which the options parser drops unread.
_FILENAME_STAR = re.compile(rb";\s*filename\*\s*=", re.IGNORECASE)


class EncodingMiddleware:
    """Answer 422 ``invalid_encoding`` to text that is not UTF-8, wherever it enters (and
    ``invalid_input`` to a control character in the query)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_target(scope)
        except InvalidInput as exc:
            await ErrorResponse(exc.to_dict(), status_code=exc.http_status)(scope, receive, send)
            return
        coding = _content_coding(scope)
        if coding is not None:
            await _coded(coding)(scope, receive, send)
            return
        check = _body_check(scope)
        if check is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _checking(receive, check.feed, check.close), send)


def _checking(receive: Receive, feed: Callable[[bytes], Any], close: Callable[[], Any]) -> Receive:
    """``receive`` that checks each chunk before the app sees it.

    The app's form parser lets the error through; FastAPI then reports it as a body it
    could not parse, with the error as the cause, and the handler answers the cause.
    A body the checker cannot parse is left to the app's parser to refuse in its words.
    """
    broken = False

    async def checked() -> Message:
        nonlocal broken
        message = await receive()
        if message["type"] == "http.request" and not broken:
            try:
                feed(message.get("body", b""))
                if not message.get("more_body", False):
                    close()
            except FormParserError:
                broken = True
        return message

    return checked
