"""The bulk endpoint's JSON parser: orjson, with the API's limits and answers.

A 10,000-row batch is about 1.7–2.8 MB of JSON. The API's ``BoundedJSONParser`` first scans the raw bytes for
their nesting depth (so a hostile body never reaches the recursive stdlib decoder), then decodes with ``json`` —
on this machine about 0.3 s and 0.2 s per batch, more than validating and storing it. orjson's decoder is not
recursive in Python and parses the batch in about 25 ms; the depth limit is then checked on the parsed value,
which for a list of flat rows is one pass over the rows.

Whatever orjson refuses (NaN, Infinity, bad UTF-8, broken JSON) goes to ``BoundedJSONParser`` unchanged, so the
answer — 400 and its message, 413 — is the API's usual one. orjson reads an integer above 2**64 as a float; no
sample field accepts a number that large, and ``core.bulk_input`` refuses it as a float with the same message.
"""

from __future__ import annotations

import io
from typing import IO, Any

import orjson
from django.conf import settings

from core.api.parsers import BoundedJSONParser, JsonTooDeep, PayloadTooLarge, api_max_body_bytes, too_large_detail

_CONTAINERS = (list, dict)


def parsed_depth(value: Any, raw: bytes | None = None) -> int:
    """Deepest nesting of lists and dicts, as ``json_nesting_depth`` counts brackets (``[]`` is 1), iteratively.

    Given the ``raw`` JSON it was parsed from, a list of flat rows is recognised by counting: each list or object
    opens with one bracket (brackets inside strings only add to the count), so when the body holds no more opening
    brackets than the outer list and its container rows, no row nests anything."""
    if type(value) not in _CONTAINERS:
        return 0
    if raw is not None and type(value) is list:
        container_rows = sum(1 for row in value if type(row) in _CONTAINERS)
        if raw.count(b"[") + raw.count(b"{") == 1 + container_rows:
            return 2 if container_rows else 1
    deepest = 0
    pending = [(value, 1)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        for child in node.values() if type(node) is dict else node:
            if type(child) in _CONTAINERS:
                pending.append((child, level + 1))
    return deepest


class BulkJSONParser(BoundedJSONParser):
    def parse(self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        limit = api_max_body_bytes()
        raw = stream.read(limit + 1) if limit else stream.read()
        if limit and len(raw) > limit:
            raise PayloadTooLarge(too_large_detail(limit))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        if encoding.lower().replace("_", "-") in {"utf-8", "utf8"}:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # the usual parser gives the usual answer
            else:
                depth, max_depth = parsed_depth(data, raw), settings.API_JSON_MAX_DEPTH
                if depth > max_depth:
                    raise JsonTooDeep(f"JSON nested {depth} levels deep; at most {max_depth} levels are accepted.")
                return data
        return super().parse(io.BytesIO(raw), media_type, parser_context)
