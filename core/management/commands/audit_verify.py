from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.audit import audit_verify_chain
from core.models import AuditCheckpoint


class Command(BaseCommand):
    help = (
        "Walk the audit-event hash chain and hold it against the signed checkpoints; report the first broken "
        "link or missing events (exit status 1 if any)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checked, broken = audit_verify_chain()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event #{broken.event_id}: {broken.problem} "
                f"({checked} events before it verified)."
            )
        latest = AuditCheckpoint.objects.order_by("-id").first()
        against = (
            f" against checkpoint #{latest.pk} (event #{latest.last_event_id})"
            if latest is not None
            else " (no checkpoint yet: deleting the newest events would not show; run audit_checkpoint)"
        )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified{against}."))
