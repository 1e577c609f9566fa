"""The test database as other processes and raw connections reach it: a URL for the child processes a test starts
(workers, beats, benchmarks) and a psycopg connection of the test's own, outside Django's transaction."""

from __future__ import annotations

import psycopg
from django.db import connection


def database_url(name: str | None = None) -> str:
    """``postgres://`` URL of the test database (or of ``name`` on the same server)."""
    settings = connection.settings_dict
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER']}@{host}:{port}/{name or settings['NAME']}"


def raw_connection() -> psycopg.Connection:
    """An autocommit connection of its own to the test database."""
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        autocommit=True,
    )
