from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.auth import revoke_all_tokens, revoke_user_tokens


class Command(BaseCommand):
    help = "Revoke API tokens: every token of one user (--user NAME) or of everyone (--all), e.g. after a leak."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--user", help="username whose tokens to revoke")
        group.add_argument("--all", action="store_true", help="revoke every user's tokens")
        parser.add_argument("--reason", default="revoked_by_admin", help="recorded on the tokens and the audit log")

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["reason"][:40]
        if options["all"]:
            count = revoke_all_tokens(actor=None, reason=reason)
            self.stdout.write(self.style.SUCCESS(f"Revoked {count} tokens of all users."))
            return
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["user"]})
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        count = revoke_user_tokens(user=user, actor=None, reason=reason)
        self.stdout.write(self.style.SUCCESS(f"Revoked {count} tokens of {options['user']}."))
