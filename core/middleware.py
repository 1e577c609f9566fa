"""Under ``/api/`` every answer is JSON, whatever fails: a body over the size limit is refused before anyone
reads it (413), and exceptions that escape a view become JSON instead of Django's HTML pages."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core import signals
from django.http import HttpRequest, HttpResponse

from core.api.errors import is_api_request, known_failure_response, payload_too_large_response, server_error_response
from core.api.parsers import api_max_body_bytes

logger = logging.getLogger("rollgate.api")


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_request(request) and self._declared_too_large(request):
            return payload_too_large_response()
        return self.get_response(request)

    @staticmethod
    def _declared_too_large(request: HttpRequest) -> bool:
        limit = api_max_body_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return False
        return bool(limit) and declared > limit

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_request(request):
            return None
        known = known_failure_response(exception)
        if known is not None:
            logger.warning("API %s %s answered %s: %r", request.method, request.path, known.status_code, exception)
            return known
        # Last resort, not a plan: an unexpected error still answers JSON. It is logged with its traceback, and
        # the signal lets Django's test client re-raise it, so a test never mistakes a bug for a 500 it expected.
        logger.exception("Unhandled error on API %s %s", request.method, request.path)
        signals.got_request_exception.send(sender=self.__class__, request=request)
        return server_error_response()
