from django.core.management.base import BaseCommand, CommandError

from core.audit import audit_verify_chain


class Command(BaseCommand):
    help = "Walk the audit-event hash chain and report the first broken link (exit status 1 if any)."

    def handle(self, *args: object, **options: object) -> None:
        checked, broken = audit_verify_chain()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event #{broken.event_id}: {broken.problem} "
                f"({checked} events before it verified)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified."))
