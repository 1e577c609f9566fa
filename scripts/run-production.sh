#!/usr/bin/env bash
# The production shape on one machine: WEB_WORKERS gunicorn workers, CELERY_WORKERS Celery workers and exactly one
# beat (which holds the beat lock), on PostgreSQL and RabbitMQ (or Redis), with production settings.
# Ctrl-C (or SIGTERM) stops every child cleanly; if any child dies, the rest are stopped too, so a supervisor
# (systemd, a container runtime) sees the failure. See docs/deploy.md.
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
#   WEB_WORKERS=2 CELERY_WORKERS=2 SEED_DEMO=1 scripts/run-production.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

export DJANGO_SETTINGS_MODULE=config.settings.production
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/rollgate}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}
export HOST=${HOST:-127.0.0.1}
export PORT=${PORT:-8000}
export WEB_WORKERS=${WEB_WORKERS:-2}
CELERY_WORKERS=${CELERY_WORKERS:-2}
CELERY_CONCURRENCY=${CELERY_CONCURRENCY:-1}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-$HOST,localhost,127.0.0.1}
# One machine has no TLS proxy in front; behind one, leave the redirect on (the production default).
export SECURE_SSL_REDIRECT=${SECURE_SSL_REDIRECT:-false}
RUN_DIR=${ROLLGATE_RUN_DIR:-var/production}
mkdir -p "$RUN_DIR/log"
export CELERY_BEAT_SCHEDULE_FILENAME=${CELERY_BEAT_SCHEDULE_FILENAME:-$RUN_DIR/celerybeat-schedule}

notes=()
if [[ -z "${SECRET_KEY:-}" ]]; then
  SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(50))')
  export SECRET_KEY
  notes+=("SECRET_KEY was not set: a random one for this run (sessions and signed links end with it).")
fi
if [[ -z "${METRICS_TOKEN:-}" ]]; then
  METRICS_TOKEN=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
  export METRICS_TOKEN
  notes+=("METRICS_TOKEN was not set: a random one for this run (printed below).")
fi

# Every process of this machine writes its Prometheus counters here; a scrape of any web worker adds them up.
# It must start empty: files of a previous run would be summed in.
PROMETHEUS_MULTIPROC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rollgate-prometheus.XXXXXX")
export PROMETHEUS_MULTIPROC_DIR

pids=()
stopping=0
stop_all() {
  [[ $stopping == 1 ]] && return
  stopping=1
  echo
  echo "Stopping ${#pids[@]} processes..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Celery finishes the task in hand (warm shutdown); gunicorn finishes its requests. Then no more waiting.
  for _ in $(seq 1 60); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  echo "Stopped."
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

"$PY" scripts/wait_for_postgres.py
"$PY" manage.py migrate --no-input
if [[ "${SEED_DEMO:-0}" == 1 ]]; then
  "$PY" manage.py seed_demo
fi

"$VENV/bin/gunicorn" -c config/gunicorn.py config.wsgi >"$RUN_DIR/log/web.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$CELERY_WORKERS"); do
  "$VENV/bin/celery" -A config worker -n "worker$i@%h" --concurrency="$CELERY_CONCURRENCY" --loglevel=INFO \
    >"$RUN_DIR/log/worker$i.log" 2>&1 &
  pids+=($!)
done
# Exactly one beat here; another beat anywhere else on the same database would stand by (core/beat.py).
"$VENV/bin/celery" -A config beat --loglevel=INFO >"$RUN_DIR/log/beat.log" 2>&1 &
pids+=($!)

base="http://$HOST:$PORT"
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
  sleep 0.5
done
curl -fsS -o /dev/null "$base/readyz" || { echo "Not ready after 60 s; see $RUN_DIR/log/"; exit 1; }

cat <<TXT

  Rollgate (production settings) at $base/
    web        gunicorn, $WEB_WORKERS workers                 log: $RUN_DIR/log/web.log
    workers    $CELERY_WORKERS Celery workers × $CELERY_CONCURRENCY         logs: $RUN_DIR/log/worker*.log
    beat       one, holding the beat lock                log: $RUN_DIR/log/beat.log
    database   $(sed -E 's#//[^@/]*@#//#; s#\?.*##' <<<"$DATABASE_URL")
    broker     $(sed -E 's#//[^@/]*@#//#' <<<"$CELERY_BROKER_URL")

  Liveness   curl $base/healthz
  Readiness  curl $base/readyz
  Metrics    curl -H "Authorization: Bearer \$METRICS_TOKEN" $base/metrics
             METRICS_TOKEN=$METRICS_TOKEN
  API        curl -X POST $base/api/v1/auth/token/ -d username=pm -d password=rollgate-demo   (with SEED_DEMO=1)
             then curl -H "Authorization: Token <token>" $base/api/v1/releases/

TXT
for note in "${notes[@]}"; do echo "  Note: $note"; done
echo "  Ctrl-C stops everything."

set +e
wait -n "${pids[@]}"
status=$?
if [[ $stopping == 0 ]]; then
  echo "A process exited (status $status); stopping the others. See $RUN_DIR/log/."
  exit 1
fi
