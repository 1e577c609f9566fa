"""One id per request (or Celery task), carried to every log line written while it is handled.

A proxy's ``X-Request-ID`` is kept when it is a plausible id, so one request can be followed from the load balancer
to the app's logs; otherwise a fresh one is made. The id goes back in the response's ``X-Request-ID`` header.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token

from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
# Anything else (a header stuffed with a log-injection payload or a megabyte) is replaced, not echoed.
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_current_request_id: ContextVar[str | None] = ContextVar("rollgate_request_id", default=None)


def current_request_id() -> str | None:
    return _current_request_id.get()


def bind_request_id(request_id: str | None) -> Token[str | None]:
    return _current_request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    _current_request_id.reset(token)


def request_id_from(header_value: str | None) -> str:
    if header_value and _PLAUSIBLE_ID.fullmatch(header_value):
        return header_value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = bind_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            unbind_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
