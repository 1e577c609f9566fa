"""The one way a stateful object declares its lifecycle: a table of named transitions.

Releases (``releases.state_machine``) and incidents (``monitoring``) each declare one ``StateMachine``; their
single transition service moves the object along it, and the admin buttons, API actions and "available
actions" are generated from the same table, so a state rule is never written twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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
