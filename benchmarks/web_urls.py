"""Rollgate's URLs plus the throughput baseline, for ``benchmarks/web_settings.py`` only.

``/bench/bare/`` is the least a Django JSON view can do — through the same middleware stack, on the same gunicorn
workers — so ``bench_api.py`` can state the API's requests per second as a share of what the framework and server
themselves allow on this machine. It answers a constant and reads nothing: serving it without authentication
exposes nothing, and it is mounted only when the benchmark settings are (a separate URL module, not a flag that
a production deployment could switch on by mistake).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 (Django reads them here)
from config.urls import urlpatterns as rollgate_urlpatterns


def bare_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bench/bare/", bare_json, name="bench-bare"), *rollgate_urlpatterns]
