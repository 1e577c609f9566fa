"""Settings of the gunicorn the benchmarks start (``benchmarks/_server.py``): the production settings as they are
(DEBUG off, the same middleware, authentication and parsers), with only what a benchmark run needs on top:

* its own Celery queue and Redis keys for unacknowledged messages (the run id comes from
  ``ROLLGATE_BENCH_CELERY_RUN``, as for ``celery_settings.py``), so the web app enqueues to the run's worker;
* ``benchmarks.web_urls``: Rollgate's URLs plus ``/bench/bare/``, the minimal Django JSON view the API's throughput
  is compared with. It exists only under these settings; ``config.urls`` never mounts it.
"""

import os

from config.settings.production import *  # noqa: F403
from config.settings.production import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BENCH_RUN = os.environ["ROLLGATE_BENCH_CELERY_RUN"]
CELERY_TASK_DEFAULT_QUEUE = f"rollgate-bench-{CELERY_BENCH_RUN}"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_key": f"unacked-bench-{CELERY_BENCH_RUN}",
    "unacked_index_key": f"unacked_index-bench-{CELERY_BENCH_RUN}",
    "unacked_mutex_key": f"unacked_mutex-bench-{CELERY_BENCH_RUN}",
}
ROOT_URLCONF = "benchmarks.web_urls"
