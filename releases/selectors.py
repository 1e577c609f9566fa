"""Named reads of releases; nothing here writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Prefetch

from core.errors import DomainError

from .models import Release, ReleaseQuerySet, RolloutStage
from .services import check_actor_may
from .state_machine import Transition, transitions_from

if TYPE_CHECKING:
    from core.actors import Actor


def release_list() -> ReleaseQuerySet:
    return Release.objects.with_related().prefetch_related(
        Prefetch("stages", queryset=RolloutStage.objects.order_by("position"))
    )


def transitions_available_to(*, release: Release, user: Actor) -> list[Transition]:
    """Transitions legal from the release's state that this user's role and duties allow.

    Guards that depend on time or other objects (hold time, approvals, freeze windows) are checked only when
    the transition is attempted; the answer then explains what is missing.
    """
    available = []
    for transition in transitions_from(release.status):
        try:
            check_actor_may(transition=transition, release=release, actor=user)
        except DomainError:
            continue
        available.append(transition)
    return available
