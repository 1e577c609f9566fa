"""One place that turns domain errors into HTTP answers: 400 per field, 403, 409 ``{code, detail}``; and the
request's or the infrastructure's failures into JSON: 413 for an oversized body, 400 for JSON nested too deep,
503 when the database is unreachable."""

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import HttpResponse
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from core.api.errors import known_failure_response
from core.api.parsers import JsonTooDeep, PayloadTooLarge
from core.errors import DomainError

logger = logging.getLogger(__name__)


def domain_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        return Response(as_serializer_error(exc), status=400)
    if isinstance(exc, IntegrityError):
        # Validation passed, then a concurrent request wrote the same unique row first: the database decided.
        logger.info("Integrity conflict on %s: %s", context.get("request"), exc)
        return Response(
            {
                "code": "conflict",
                "detail": "This conflicts with a record written at the same moment; reload and retry.",
            },
            status=409,
        )
    if isinstance(exc, DataError):
        return Response({"code": "invalid", "detail": "A value is out of the range the database can store."}, 400)
    if isinstance(exc, PayloadTooLarge | JsonTooDeep):
        return Response({"code": exc.default_code, "detail": str(exc.detail)}, status=exc.status_code)
    if isinstance(exc, Throttled):
        response = exception_handler(exc, context)
        if response is not None:
            response.data = {"code": "throttled", "detail": str(exc.detail), "retry_after": getattr(exc, "wait", None)}
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("Database unavailable on %s: %s", context.get("request"), exc)
    known = known_failure_response(exc)
    if known is not None:
        return Response(json.loads(known.content), status=known.status_code, headers=_retry_after(known))
    return exception_handler(exc, context)


def _retry_after(response: HttpResponse) -> dict[str, str]:
    return {"Retry-After": response["Retry-After"]} if response.has_header("Retry-After") else {}
