"""Fail early, with the command to fix it, when the test database server does not answer; create the database
named by DATABASE_URL if it is missing, so the Django checks can read its migration history."""

import os
import sys

import psycopg
from psycopg import sql

url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollgate")
server_url, database = url.rsplit("/", 1)
database = database.split("?", 1)[0]
try:
    with psycopg.connect(f"{server_url}/postgres", connect_timeout=5, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
except psycopg.OperationalError as exc:
    sys.stderr.write(
        f"PostgreSQL does not answer at {server_url}: {exc}\n"
        "Start it with:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
        "or point DATABASE_URL at a server you have (postgres://user@host:5432/dbname).\n"
    )
    sys.exit(1)
