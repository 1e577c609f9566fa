"""One place that turns domain errors into HTTP answers: 400 per field, 403, 409 ``{code, detail}``."""

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

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
    return exception_handler(exc, context)
