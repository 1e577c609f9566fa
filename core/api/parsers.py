"""A JSON parser with limits: a body larger than the API accepts is a 413, nesting deeper than any Rollgate
payload is a 400 — both as JSON, and neither ever reaches the recursive ``json`` decoder."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

# JSON strings (with their escapes) may hold brackets that do not nest anything; they are cut out before counting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is larger than the API accepts."


class JsonTooDeep(ParseError):
    default_code = "json_too_deep"


def api_max_body_bytes() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)


def json_nesting_depth(raw: bytes) -> int:
    """Deepest nesting of arrays and objects, counted without recursion (a 100,000-deep body is just a scan)."""
    brackets = _NOT_A_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    if not brackets:
        return 0
    return max(accumulate(_STEP[byte] for byte in brackets))


def too_large_detail(limit: int) -> str:
    return (
        f"The request body is larger than the API accepts ({limit} bytes); "
        "send metric samples in batches of at most 10,000 rows."
    )


class BoundedJSONParser(JSONParser):
    def parse(self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        limit = api_max_body_bytes()
        # Read one byte past the limit: DRF hands over the raw request stream, which Django's body size
        # setting does not guard.
        raw = stream.read(limit + 1) if limit else stream.read()
        if limit and len(raw) > limit:
            raise PayloadTooLarge(too_large_detail(limit))
        max_depth = settings.API_JSON_MAX_DEPTH
        depth = json_nesting_depth(raw)
        if depth > max_depth:
            raise JsonTooDeep(f"JSON nested {depth} levels deep; at most {max_depth} levels are accepted.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            parse_constant = strict_constant if self.strict else None
            return json.loads(text, parse_constant=parse_constant)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
