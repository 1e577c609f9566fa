"""The test suite's PostgreSQL backend: django-prometheus's (as in every setting), with a cheaper reset between
transactional tests.

Transactional tests (threads, real workers, the browser's live server) empty every table when they end and put back
what the migrations wrote (roles, permissions, metric definitions, policies, checklist templates). Django truncates
~80 tables (new files for each table and index) and saves ~700 objects one by one; here the tables are emptied with
DELETE (they hold a test's few rows) and the rows copied back with COPY: the same data in a fraction of the time.
Never used outside the tests.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.backends.postgresql.creation import DatabaseCreation
from django.db.backends.postgresql.operations import DatabaseOperations
from django_prometheus.db.backends.postgresql import base
from psycopg import sql


class CopyRestoringCreation(DatabaseCreation):
    def serialize_db_to_string(self) -> Any:
        """Every non-empty table Django flushes, as COPY's own text format (not a string: nothing else reads it)."""
        contents: dict[str, bytes] = {}
        with self.connection.cursor() as cursor:
            for table in sorted(self.connection.introspection.django_table_names(only_existing=True)):
                chunks: list[bytes] = []
                with cursor.connection.cursor().copy(
                    sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))
                ) as copy:
                    chunks.extend(bytes(chunk) for chunk in copy)
                if chunks:
                    contents[table] = b"".join(chunks)
        return contents

    def deserialize_db_from_string(self, data: Any) -> None:
        # Foreign keys are DEFERRABLE INITIALLY DEFERRED: within one transaction the tables load in any order and
        # are checked at commit. Explicit ids leave the sequences alone; the flush before did not reset them either.
        # The first transactional test finds the rows still there (nothing flushed yet): they are replaced, as
        # Django's save() of each object would.
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            raw = cursor.connection
            for table in data:
                cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            for table, rows in data.items():
                with raw.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                    copy.write(rows)


class DeletingFlushOperations(DatabaseOperations):
    def sql_flush(
        self, style: Any, tables: Any, *, reset_sequences: bool = False, allow_cascade: bool = False
    ) -> list[str]:
        if reset_sequences or not tables:
            return super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        # Every table is emptied, so no foreign key or append-only trigger has anything to protect: replica mode
        # skips them for this transaction only (flush runs its statements in one), as TRUNCATE would.
        return [
            "SET LOCAL session_replication_role = replica;",
            *(f"DELETE FROM {self.quote_name(table)};" for table in tables),  # noqa: S608 (quoted table names)
        ]


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = CopyRestoringCreation
    ops_class = DeletingFlushOperations
