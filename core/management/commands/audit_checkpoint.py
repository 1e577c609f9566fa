from typing import Any

from django.core.management.base import BaseCommand

from core.audit import audit_checkpoint


class Command(BaseCommand):
    help = "Sign the audit chain's head (last id, hash, count) into a checkpoint row and the log."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = audit_checkpoint()
        if checkpoint is None:
            self.stdout.write("The audit log is empty: nothing to checkpoint.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint #{checkpoint.pk}: event #{checkpoint.last_event_id}, hash {checkpoint.last_hash}, "
                f"{checkpoint.event_count} events, signature {checkpoint.signature}."
            )
        )
