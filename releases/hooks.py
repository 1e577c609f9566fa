"""The extension point apps use to take part in release transitions.

``releases`` knows nothing of approval policies, checklists, freeze windows or guardrails. Each app (``releases``
itself included) declares its guards and effects in ``<app>/lifecycle.py`` as two module-level tables, ``GUARDS``
and ``EFFECTS`` (event name → tuple of functions), and registers them from ``AppConfig.ready()`` with one call,
``hooks.register_lifecycle(lifecycle)``. Go-to-definition follows every name, and ``manage.py lifecycle`` prints
them per transition. Guards run in the order the apps are installed (``releases``, ``governance``, ``monitoring``).

* a **guard** runs inside the transition's transaction, after the row is locked and the state checked, before
  anything is written; it refuses by raising a ``core.errors.DomainError`` (``GuardFailed`` → 409);
* an **effect** runs inside the same transaction after the new state and the audit event are written (e.g. a
  checklist instantiated on entering a gate); work outside the database must be scheduled with
  ``transaction.on_commit`` from the effect.

Besides the transition names of ``releases.state_machine.TRANSITIONS`` there are two events:
``content_changed`` (a draft's material content changed; effects only) and ``created``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.actors import Actor

    from .models import Release
    from .state_machine import Transition

# The StateMachine (``core.transitions.MACHINES``) these hooks belong to; read by ``manage.py lifecycle``.
MACHINE = "release"
CONTENT_CHANGED = "content_changed"
CREATED = "created"


@dataclass
class TransitionContext:
    release: Release
    event: str
    actor: Actor | None
    now: datetime
    reason: str = ""
    # Set when the actor explicitly overrides a guard that allows it (manual promotion, emergency freeze override).
    override: bool = False
    transition: Transition | None = None
    from_state: str = ""
    to_state: str = ""
    # Guards and effects may add facts here; they are written into the audit event's data.
    audit_data: dict[str, Any] = field(default_factory=dict)


Hook = Callable[[TransitionContext], None]

_guards: dict[str, list[Hook]] = defaultdict(list)
_effects: dict[str, list[Hook]] = defaultdict(list)


def register_lifecycle(module: ModuleType) -> None:
    """Register an app's ``lifecycle`` module: its ``GUARDS`` and ``EFFECTS`` tables (either may be absent).
    Registering the same module twice adds nothing."""
    for registry, table_name in ((_guards, "GUARDS"), (_effects, "EFFECTS")):
        table: dict[str, tuple[Hook, ...]] = getattr(module, table_name, {})
        for event, functions in table.items():
            registry[event].extend(fn for fn in functions if fn not in registry[event])


def guards_for(event: str) -> tuple[Hook, ...]:
    return tuple(_guards.get(event, ()))


def effects_for(event: str) -> tuple[Hook, ...]:
    return tuple(_effects.get(event, ()))


def registered_events() -> list[str]:
    """Every event with a guard or an effect, in registration order (for ``manage.py lifecycle``)."""
    return list(dict.fromkeys([*_guards, *_effects]))


def run_guards(context: TransitionContext) -> None:
    for guard in guards_for(context.event):
        guard(context)


def run_effects(context: TransitionContext) -> None:
    for effect in effects_for(context.event):
        effect(context)
