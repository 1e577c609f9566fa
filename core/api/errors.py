"""JSON answers for failures that happen below the API's serializers: an oversized or malformed request, an
unreachable database. Shared by the DRF exception handler, the API middleware and the site's error handlers, so
``/api/`` answers the same JSON wherever the failure surfaced."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse

from .parsers import too_large_detail

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def payload_too_large_response() -> JsonResponse:
    return JsonResponse(
        {"code": "payload_too_large", "detail": too_large_detail(int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0))},
        status=413,
    )


def database_unavailable_response() -> JsonResponse:
    response = JsonResponse(
        {"code": "database_unavailable", "detail": "The database is unreachable; retry in a moment."}, status=503
    )
    # Clients and load balancers back off by this; a dropped connection usually returns within seconds.
    response["Retry-After"] = "5"
    return response


def bad_request_response(detail: str = "The request could not be read.") -> JsonResponse:
    return JsonResponse({"code": "bad_request", "detail": detail}, status=400)


def server_error_response() -> JsonResponse:
    return JsonResponse({"code": "server_error", "detail": "The server failed to answer; this was logged."}, status=500)


def known_failure_response(exc: BaseException) -> JsonResponse | None:
    """The JSON answer for a failure that is the request's or the infrastructure's, not a bug; else None."""
    if isinstance(exc, RequestDataTooBig):
        return payload_too_large_response()
    if isinstance(exc, SuspiciousOperation):
        return bad_request_response()
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable_response()
    return None
