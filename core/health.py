"""``/healthz`` and ``/readyz``: the only endpoints answered without authentication.

Load balancers and orchestrators probe them many times a minute, with no credentials, often over plain HTTP to the
instance's own address (a Host that is not in ALLOWED_HOSTS). So a middleware answers them first, before the HTTPS
redirect, the host check, sessions and authentication, and they say only "ok" or which dependency is unavailable:
no versions, hostnames, URLs or error texts (those go to the log).

- ``/healthz`` (liveness): the process answers. No database, no broker: restarting a web process because the
  database is down would not bring the database back.
- ``/readyz`` (readiness): the database answers a trivial query and the Celery broker accepts a connection, each
  within ``READINESS_TIMEOUT_SECONDS``; 200 with each check's status, or 503 naming the failed check, so the load
  balancer stops sending requests to a replica that cannot serve them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

logger = logging.getLogger("rollgate.health")

OK = "ok"
UNAVAILABLE = "unavailable"


def liveness() -> JsonResponse:
    return JsonResponse({"status": OK})


def database_ready() -> bool:
    timeout_ms = int(settings.READINESS_TIMEOUT_SECONDS * 1000)
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Local to this transaction: a wedged database fails the check instead of hanging the probe.
                cursor.execute("SET LOCAL statement_timeout = %s", [timeout_ms])
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # whatever the driver raises, the answer is "not ready"; the reason goes to the log
        logger.warning("Readiness: the database did not answer", exc_info=True)
        # A broken connection must not be reused by the next request of this worker.
        connection.close_if_unusable_or_obsolete()
        return False


def broker_ready() -> bool:
    timeout = settings.READINESS_TIMEOUT_SECONDS
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=timeout,
            transport_options={**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "socket_timeout": timeout},
        ) as broker:
            # One attempt, no retry loop: a probe must answer within its own timeout.
            broker.ensure_connection(max_retries=0)
            return True
    except Exception:  # kombu's errors vary by transport (socket, redis, amqp); all mean "not ready"
        logger.warning("Readiness: the Celery broker did not accept a connection", exc_info=True)
        return False


READINESS_CHECKS: dict[str, Callable[[], bool]] = {"database": database_ready, "broker": broker_ready}


def readiness() -> JsonResponse:
    checks = {name: OK if check() else UNAVAILABLE for name, check in READINESS_CHECKS.items()}
    failed = [name for name, state in checks.items() if state != OK]
    body: dict[str, object] = {"status": OK if not failed else UNAVAILABLE, "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


PROBES: dict[str, Callable[[], JsonResponse]] = {"/healthz": liveness, "/readyz": readiness}


class HealthProbeMiddleware:
    """First in MIDDLEWARE: answers the probe paths (GET or HEAD) before anything that could refuse a probe."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"detail": "Method not allowed."}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        response = probe()
        response["Cache-Control"] = "no-store"
        return response
