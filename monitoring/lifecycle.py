"""Monitoring's part in the release lifecycle, said in one place: which guards it adds to which transition.

``MonitoringConfig.ready()`` registers this table with ``releases.hooks``; nothing else registers monitoring
hooks, so this file is the answer to "what does monitoring check before a release moves?".
"""

from __future__ import annotations

from releases.hooks import Hook

from .services.rollout import guardrails_guard

# Guardrails must pass (no breach, no open incident) before a stage is promoted or verification completes,
# unless the person overrides with a reason.
GUARDS: dict[str, tuple[Hook, ...]] = {
    "promote": (guardrails_guard,),
    "complete_verification": (guardrails_guard,),
}
# Monitoring reacts to no transition inside its transaction: its actions (pause, rollback) are its own calls.
EFFECTS: dict[str, tuple[Hook, ...]] = {}
