"""The one way a stateful object declares its lifecycle: a table of named transitions.

Releases (``releases.state_machine``) and incidents (``monitoring``) each declare one ``StateMachine``; their
single transition service moves the object along it, and the admin buttons, API actions and "available
actions" are generated from the same table, so a state rule is never written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models, transaction

from .errors import DomainError, DomainPermissionDenied, DomainValidationError
from .service_support import save_audited

if TYPE_CHECKING:
    from .actors import Actor

MACHINES: dict[str, StateMachine] = {}


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    target: str
    label: str
    # The Django permission (app_label.codename) an actor needs; the system actor (Celery) may run the
    # transitions marked ``system_allowed``.
    permission: str
    system_allowed: bool = False
    reason_required: bool = False
    # Shown in red in the admin: these stop or end the object's work.
    dangerous: bool = False
    # The actor may override the guards that allow it, with a reason.
    overridable: bool = False

    def allows_from(self, status: str) -> bool:
        return status in self.sources

    @property
    def url_name(self) -> str:
        """The API action's path segment: ``start_rollout`` → ``start-rollout``."""
        return self.name.replace("_", "-")


class StateMachine:
    """An ordered table of transitions for one model's ``status`` field. Every table declared registers itself
    in ``MACHINES``, so ``manage.py lifecycle`` can print them all."""

    def __init__(self, name: str, transitions: Iterable[Transition]) -> None:
        self.name = name
        self._by_name = {transition.name: transition for transition in transitions}
        MACHINES[name] = self

    def __iter__(self) -> Iterator[Transition]:
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> Transition:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Transition | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def transitions_from(self, status: str) -> list[Transition]:
        return [transition for transition in self if transition.allows_from(status)]

    def states(self) -> list[str]:
        seen: dict[str, None] = {}
        for transition in self:
            for state in sorted(transition.sources):
                seen.setdefault(state, None)
            seen.setdefault(transition.target, None)
        return list(seen)


def check_role(*, transition: Transition, actor: Actor | None, noun: str) -> None:
    """The system (``None``) runs only ``system_allowed`` transitions; a person needs the transition's
    permission. Checked before anything is locked or read, so a refused role learns nothing of the row's state."""
    if actor is None:
        if not transition.system_allowed:
            raise DomainPermissionDenied(f"The system cannot {transition.label.lower()} {noun}.")
        return
    if not actor.has_perm(transition.permission):  # type: ignore[attr-defined]
        raise DomainPermissionDenied(f"Your role does not allow you to {transition.label.lower()} {noun}.")


@dataclass
class Applied:
    """What a transition's own step decided once the row was locked: where it goes (normally the transition's
    target), what its audit event says, and the effects to run after the write, inside the transaction."""

    target: str
    release_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    effects: Callable[[], object] | None = None


Row = TypeVar("Row", bound=models.Model)


def perform_transition(
    *,
    machine: StateMachine,
    transition: Transition,
    actor: Actor | None,
    reason: str,
    noun: str,
    lock: Callable[[], Row],
    refuse: Callable[[Row], DomainError],
    apply: Callable[[Row, str], Applied],
    reason_required: bool | None = None,
) -> Row:
    """The one choke point of every state machine: reason → role → lock → table → the transition's own checks
    and changes (``apply``: separation of duties, compare-and-set, guards, timestamps) → status with its history
    row and audit event → effects, all in one transaction. Nothing else writes a governed ``status``."""
    if transition.name not in machine:
        raise ValueError(f"{transition.name} is not a transition of the {machine.name} lifecycle")
    required = transition.reason_required if reason_required is None else reason_required
    if required and not reason.strip():
        raise DomainValidationError({"reason": [f"A reason is required to {transition.label.lower()}."]})
    check_role(transition=transition, actor=actor, noun=noun)
    with transaction.atomic():
        row = lock()
        from_state: str = row.status  # type: ignore[attr-defined]
        if not transition.allows_from(from_state):
            raise refuse(row)
        applied = apply(row, from_state)
        row.status = applied.target  # type: ignore[attr-defined]
        save_audited(
            row,
            actor=actor,
            action=f"{machine.name}.{transition.name}",
            reason=reason.strip(),
            release_id=applied.release_id,
            from_state=from_state,
            to_state=applied.target,
            data=applied.data,
            # Status and timestamps come from the table and the clock, not from input; full_clean would re-query
            # every foreign key inside the lock.
            validate=False,
        )
        if applied.effects is not None:
            applied.effects()
    return row
