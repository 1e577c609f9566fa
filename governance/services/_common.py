"""What the governance services share: locking a release, role groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import Group

from core.errors import (
    DomainValidationError,
)
from core.roles import ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from releases.models import Release

if TYPE_CHECKING:
    from core.actors import Actor as User


# Groups a checklist item may name as signer: the roles that review, run and operate releases. They all hold
# ``releases.approve_release``, so whoever signs the last review item can complete the approval.
SIGNER_GROUPS = (REVIEWERS, PROGRAM_MANAGERS, ON_CALL)


def lock_release(release_id: int) -> Release:
    return Release.objects.select_for_update(of=("self",)).select_related("solution").get(pk=release_id)


def user_in_group(*, user: User, group: Group) -> bool:
    """Membership of a role group. A superuser may count for any group (separation of duties still applies)."""
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(pk=group.pk).exists()  # type: ignore[attr-defined]


def resolve_group(group: Group | str | int, field: str = "group") -> Group:
    if isinstance(group, Group):
        return group
    lookup = {"pk": group} if isinstance(group, int) else {"name": group}
    found = Group.objects.filter(**lookup).first()
    if found is None:
        raise DomainValidationError({field: [f"Unknown group '{group}'."]})
    return found
