"""Named reads of releases; nothing here writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet

from core.errors import DomainError, DomainPermissionDenied, SeparationOfDuties
from core.transitions import check_role

from .models import CONTENT_WRITE_REASONS, Release, ReleaseQuerySet, RolloutStage
from .state_machine import APPROVE, SUBMIT, Transition, transitions_from

if TYPE_CHECKING:
    from core.actors import Actor


def release_list() -> ReleaseQuerySet:
    return Release.objects.with_related().prefetch_related(
        Prefetch("stages", queryset=RolloutStage.objects.order_by("position")), "co_authors"
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


def release_ids_written_by(user: Actor) -> QuerySet[Any]:
    """A subquery of the ids of releases ``user`` wrote content of (created or edited), for set-based exclusion."""
    return Release.history.filter(history_user_id=user.pk, history_change_reason__in=CONTENT_WRITE_REASONS).values("id")


@dataclass(frozen=True)
class ReleaseOwnership:
    """What the duties of a transition read of a release, as plain ids (a listing reads no model instances)."""

    id: int
    status: str
    author_id: int
    co_author_ids: frozenset[int]


def transition_names_by_release(*, releases: Iterable[ReleaseOwnership], user: Actor) -> dict[int, list[str]]:
    """``transitions_available_to`` for a page of releases in a constant number of queries: the role checks once
    per status (they depend on the user and the transition only), the duties per release from its owner ids and,
    only where an approval is possible, the content writers of every release in review, read in one query."""
    releases = list(releases)
    allowed_by_status: dict[str, list[Transition]] = {}
    for status in {release.status for release in releases}:
        allowed = allowed_by_status[status] = []
        for transition in transitions_from(status):
            try:
                check_role(transition=transition, actor=user, noun="a release")
            except DomainError:
                continue
            allowed.append(transition)
    approvable = [release.id for release in releases if APPROVE in allowed_by_status[release.status]]
    editors_by_release: dict[int, set[int]] = {release_id: set() for release_id in approvable}
    if approvable:
        writes = Release.history.filter(id__in=approvable, history_change_reason__in=CONTENT_WRITE_REASONS).exclude(
            history_user_id=None
        )
        for release_id, editor_id in writes.values_list("id", "history_user_id").distinct():
            editors_by_release[release_id].add(editor_id)

    def names_for(release: ReleaseOwnership) -> list[str]:
        available = []
        for transition in allowed_by_status[release.status]:
            try:
                _check_duties_of(
                    transition=transition,
                    actor_id=user.pk,
                    owner_ids=lambda: {release.author_id, *release.co_author_ids},
                    content_editor_ids=lambda: {release.author_id, *editors_by_release.get(release.id, ())},
                )
            except DomainError:
                continue
            available.append(transition.name)
        return available

    return {release.id: names_for(release) for release in releases}


def release_content_editors(release: Release) -> set[int]:
    """Ids of everyone who wrote content of ``release``: its author and every user who created or edited it (its
    content, descriptive fields or stages), from the history rows — not only the last editor. Nobody is exempt,
    superusers included: separation of duties is a domain rule, not a permission."""
    writes = Release.history.filter(id=release.pk, history_change_reason__in=CONTENT_WRITE_REASONS).exclude(
        history_user_id=None
    )
    return {release.author_id, *writes.values_list("history_user_id", flat=True)}


def release_owner_ids(release: Release) -> set[int]:
    """Who may edit and submit the draft: its author and co-authors (program managers reassign, not edit)."""
    # ``.all()`` so a prefetched list (release_list) answers without a query per release.
    return {release.author_id, *(user.pk for user in release.co_authors.all())}


def check_actor_may(*, transition: Transition, release: Release, actor: Actor | None) -> None:
    """Role, ownership and separation-of-duties checks of a transition, without its state or guards."""
    check_role(transition=transition, actor=actor, noun="a release")
    if actor is not None:
        check_duties(transition=transition, release=release, actor=actor)


def check_duties(*, transition: Transition, release: Release, actor: Actor) -> None:
    """What depends on who wrote the release, beyond the role: only owners submit, no content writer approves."""
    _check_duties_of(
        transition=transition,
        actor_id=actor.pk,
        owner_ids=lambda: release_owner_ids(release),
        content_editor_ids=lambda: release_content_editors(release),
    )


def _check_duties_of(
    *,
    transition: Transition,
    actor_id: int,
    owner_ids: Callable[[], set[int]],
    content_editor_ids: Callable[[], set[int]],
) -> None:
    # The ids are read lazily: most transitions need neither, and reading the editors is a query per release.
    if transition is SUBMIT and actor_id not in owner_ids():
        raise DomainPermissionDenied(
            "Only the release's author or a co-author may submit it.", code="not_release_owner"
        )
    if transition is APPROVE and actor_id in content_editor_ids():
        raise SeparationOfDuties("Whoever wrote content of a release (author or editor) can never approve it.")
