import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("rollgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _make_beat_schedule_folder(**kwargs: Any) -> None:
    # Settings create no folders at import (production must not write into its code directory); a worker with
    # embedded beat needs the schedule file's folder, so it makes it when it starts, whatever the settings.
    Path(app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)
