"""``manage.py evaluate_guardrails``: one evaluation cycle, synchronously, through the service the beat uses."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring.services import guardrails_evaluate, rollout_automate


class Command(BaseCommand):
    help = "Evaluate the guardrails of every live release once (idempotent per window)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--release", type=int, action="append", help="Only these release ids.")
        parser.add_argument("--automate", action="store_true", help="Then run rollout automation once.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = guardrails_evaluate(release_ids=options["release"])
        self.stdout.write(
            f"releases={result.releases} evaluations={result.evaluations} skipped={result.skipped} "
            f"opened={result.incidents_opened} retriggered={result.incidents_retriggered} "
            f"resolved={result.incidents_resolved} actions={result.actions_taken} errors={result.errors} "
            f"outcomes={dict(result.outcomes)}"
        )
        if options["automate"]:
            automation = rollout_automate()
            self.stdout.write(f"promoted={automation.promoted} verified={automation.verified}")
