"""``/metrics`` for Prometheus: django-prometheus's request and database metrics, the process's own counters, and
the collectors apps register to read their state from the database at scrape time.

Who may read it: a scraper sending ``Authorization: Bearer <METRICS_TOKEN>`` (Prometheus's ``authorization``
setting), or a signed-in superuser looking by hand. Anyone else gets 401 (no credentials) or 403 (wrong ones).
The numbers are not secrets, but counts of incidents and dead letters are the organisation's business, and an open
endpoint that runs queries is an easy way to load the database.

Processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (``scripts/run-production.sh`` sets it), every gunicorn and Celery
process of the machine writes its counters and histograms to files there, and a scrape of any web process adds them
up. Without it a scrape sees only the process that answers it. The database-derived gauges do not depend on either:
every replica reads the same rows, so any replica's answer is the answer.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Collectors that read the database when scraped; apps append theirs in AppConfig.ready(). They are kept out of
# the global registry so nothing but a scrape runs their queries.
SCRAPE_TIME_COLLECTORS: list[Collector] = []


def register_scrape_time_collector(collector: Collector) -> None:
    if not any(type(existing) is type(collector) for existing in SCRAPE_TIME_COLLECTORS):
        SCRAPE_TIME_COLLECTORS.append(collector)


class _ThisProcess(Collector):
    """The global registry (this process's metrics) as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)  # every process of the machine, added up
    else:
        registry.register(_ThisProcess())
    for collector in SCRAPE_TIME_COLLECTORS:
        registry.register(collector)
    return registry


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _refusal(status: int, detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = JsonResponse({"detail": "Method not allowed."}, status=405)
        response["Allow"] = "GET, HEAD"
        return response
    token = _bearer_token(request)
    expected = settings.METRICS_TOKEN
    if token is not None:
        # Compared in constant time; an unset METRICS_TOKEN matches no token at all.
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            return _refusal(403, "Invalid metrics token.")
    elif not request.user.is_authenticated:
        return _refusal(401, "Send Authorization: Bearer <METRICS_TOKEN>, or sign in as a superuser.")
    elif not (request.user.is_active and request.user.is_superuser):
        return _refusal(403, "Only a superuser (or the metrics token) may read the metrics.")
    page = HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
    page["Cache-Control"] = "no-store"
    return page
