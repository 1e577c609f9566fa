"""gunicorn's settings for ``scripts/run-production.sh`` (``gunicorn -c config/gunicorn.py config.wsgi``).

Command-line flags and ``GUNICORN_CMD_ARGS`` override these.
"""

import os

from prometheus_client import multiprocess

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
# A 10,000-row metric batch takes a few seconds to validate and write; the default 30 s leaves room for a slow one.
timeout = int(os.environ.get("WEB_TIMEOUT_SECONDS", "60"))
# Recycle workers now and then so a slow leak never takes a replica down; jitter keeps them from restarting at once.
max_requests = 2000
max_requests_jitter = 200
# Access lines and gunicorn's own (boot, worker exits) as JSON, like the application's.
accesslog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "core.json_logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    # With PROMETHEUS_MULTIPROC_DIR, a dead worker's live gauges must stop counting (its counters stay summed).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
