"""Django's ``flush``, allowed to empty the append-only audit tables.

Flushing wipes every table on purpose (the test suite does it between transactional tests). The audit tables'
TRUNCATE trigger lets it through only in a session that sets ``rollgate.allow_audit_truncate``; this command
sets it for its own connection and clears it afterwards.
"""

from typing import Any

from django.core.management.commands.flush import Command as DjangoFlushCommand
from django.db import DEFAULT_DB_ALIAS, connections


class Command(DjangoFlushCommand):
    def handle(self, **options: Any) -> None:
        connection = connections[options.get("database") or DEFAULT_DB_ALIAS]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('rollgate.allow_audit_truncate', 'on', false)")
        try:
            return super().handle(**options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('rollgate.allow_audit_truncate', '', false)")
