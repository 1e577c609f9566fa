"""Fail early, with the command to fix it, when the test database server does not answer."""

import os
import sys

import psycopg

url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollgate")
admin_url = url.rsplit("/", 1)[0] + "/postgres"
try:
    with psycopg.connect(admin_url, connect_timeout=5):
        pass
except psycopg.OperationalError as exc:
    sys.stderr.write(
        f"PostgreSQL does not answer at {admin_url}: {exc}\n"
        "Start it with:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
        "or point DATABASE_URL at a server you have (postgres://user@host:5432/dbname).\n"
    )
    sys.exit(1)
