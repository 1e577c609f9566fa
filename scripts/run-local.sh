#!/usr/bin/env bash
# Starts the web app, and a Celery worker with embedded beat, on the embedded default (no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log

"$VENV/bin/celery" -A config worker -B --without-mingle --without-gossip --without-heartbeat \
  --pool=solo --loglevel=INFO --logfile=var/log/celery.log &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null || true; wait $WORKER_PID 2>/dev/null || true' EXIT INT TERM

cat <<TXT

  Rollgate is starting at http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/, API: http://$HOST:$PORT/api/docs/)
  Celery worker + beat: running (log: var/log/celery.log)

  Demo logins (password for all: rollgate-demo)
    author      Authors            creates releases, edits drafts, submits for review
    pm          Program managers   approves, starts / promotes / pauses / rolls back, verifies
    reviewer    Reviewers          signs checklist items, approves for their domain
    oncall      On-call            triages incidents, may pause or roll back with a reason
    auditor     Auditors           reads everything, exports evidence
    admin       superuser          (still bound by separation of duties)
  Also: author2, pm2, reviewer2 (second members of the same roles).

  API token: curl -s -X POST http://$HOST:$PORT/api/v1/auth/token/ -d username=pm -d password=rollgate-demo

TXT
"$VENV/bin/python" manage.py runserver "$HOST:$PORT"
