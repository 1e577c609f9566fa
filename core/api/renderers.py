"""JSON responses written by orjson: the same bytes DRF's ``JSONRenderer`` writes, several times faster.

Encoding a page of 50 releases (57 kB) took ``json.dumps`` about 2 ms a request. orjson writes compact UTF-8 as
DRF's defaults do (``COMPACT_JSON``, ``UNICODE_JSON``); anything it does not know natively (lazy translations,
dates and times, decimals, durations) goes to DRF's own encoder, so it comes out as before. An indented answer
(the browsable API, ``Accept: application/json; indent=4``), settings that change the format, and whatever orjson
refuses (an integer beyond 64 bits) are left to ``JSONRenderer`` itself. One difference: a NaN or infinite
float is written as ``null``, where ``JSONRenderer`` (``STRICT_JSON``) raised and the client got a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class OrjsonRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        context = renderer_context or {}
        if self.ensure_ascii or not self.compact or self.get_indent(accepted_media_type or "", context):
            return super().render(data, accepted_media_type, context)
        try:
            content = orjson.dumps(data, default=self.encoder_class().default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, context)
        # As JSONRenderer does: U+2028 and U+2029 are valid JSON but end a line in JavaScript.
        return content.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
