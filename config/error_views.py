"""Site error handlers: HTML for people, JSON under ``/api/``. They catch what fails outside a view (a
middleware that touches the database, a request Django refuses to read) when DEBUG is off."""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.api.errors import bad_request_response, is_api_request, known_failure_response, server_error_response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return known_failure_response(exception) or bad_request_response()
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"code": "not_found", "detail": f"No API resource at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"code": "permission_denied", "detail": str(exception) or "Not allowed."}, status=403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        # Django calls this while handling the exception, so it is still the current one.
        exception = sys.exc_info()[1]
        known = known_failure_response(exception) if exception is not None else None
        return known or server_error_response()
    return defaults.server_error(request)
