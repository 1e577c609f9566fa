"""``manage.py redrive_notifications``: send dead-lettered notifications back to delivery, as the admin action and
``POST /api/v1/notifications/redrive/`` do (same service, same audit event)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from monitoring.choices import DeliveryStatus
from monitoring.models import Incident, NotificationOutbox
from monitoring.services import notification_redrive
from monitoring.services.notifications import DEAD_STATUSES


class Command(BaseCommand):
    help = "Redrive dead-lettered notifications: of one incident, chosen rows, or all of them."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--incident", type=int, help="The dead letters of this incident.")
        target.add_argument("--id", type=int, action="append", dest="ids", help="These outbox rows (repeatable).")
        target.add_argument("--all", action="store_true", help="Every dead letter.")
        parser.add_argument(
            "--as", dest="username", help="Act as this user (their role must allow it); default: the system."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        incident_id, ids, everything = options["incident"], options["ids"], options["all"]
        dead = NotificationOutbox.objects.filter(status__in=DEAD_STATUSES)
        if incident_id is None and not ids and not everything:
            # Nothing chosen: say what there is rather than act.
            self.stdout.write(f"{dead.count()} dead-lettered notification(s); choose --incident N, --id N or --all.")
            for row in dead.order_by("pk")[:50]:
                line = f"  #{row.pk} incident {row.incident_id} {row.channel} {row.target}: {row.last_error}"
                self.stdout.write(line)
            return
        actor = None
        if options["username"]:
            try:
                actor = get_user_model().objects.get(username=options["username"])
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"No user {options['username']!r}.") from exc
        incident = None
        if incident_id is not None:
            incident = Incident.objects.filter(pk=incident_id).first()
            if incident is None:
                raise CommandError(f"No incident {incident_id}.")
        try:
            redriven = notification_redrive(actor=actor, outbox_ids=ids, incident=incident, all_dead=everything)
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        pending = NotificationOutbox.objects.filter(status=DeliveryStatus.PENDING).count()
        self.stdout.write(f"redriven={len(redriven)} ids={redriven} still_dead={dead.count()} pending={pending}")
