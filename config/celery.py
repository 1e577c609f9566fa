import os
from contextvars import Token
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, task_postrun, task_prerun

from core.request_id import bind_request_id, unbind_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("rollgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _make_beat_schedule_folder(**kwargs: Any) -> None:
    # Settings create no folders at import (production must not write into its code directory); a worker with
    # embedded beat needs the schedule file's folder, so it makes it when it starts, whatever the settings.
    Path(app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)


_task_log_ids: dict[str, Token[str | None]] = {}


@task_prerun.connect
def _bind_task_id_to_logs(task_id: str | None = None, **kwargs: Any) -> None:
    # A task's log lines carry its id as their request id, as a web request's do.
    if task_id:
        _task_log_ids[task_id] = bind_request_id(task_id)


@task_postrun.connect
def _unbind_task_id_from_logs(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_log_ids.pop(task_id, None) if task_id else None
    if token is not None:
        unbind_request_id(token)
