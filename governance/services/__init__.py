"""Every write of governance, by concern: ``approvals``, ``checklists``, ``templates``, ``policies``,
``freeze_windows``. Callers use ``from governance import services; services.x``; the names are re-exported here.

Separation of duties lives in these services (``has_perm`` is always True for a superuser). Services that can move
a release lock its row first (``select_for_update``), so two approvals recorded at the same moment serialize and
exactly one of them makes the release ``approved``.
"""

from ..selectors import is_author_or_editor
from ._common import (
    SIGNER_GROUPS,
    lock_release,
    resolve_group,
    user_in_group,
)
from .approvals import (
    APPROVAL_INCOMPLETE,
    approval_record,
    approvals_dismiss,
    approvals_expire,
    approve_if_ready,
)
from .checklists import (
    RETRO_REVIEW_DUE,
    checklist_freeze,
    checklist_gate_guard,
    checklist_instantiate,
    checklist_item_mark_na,
    checklist_item_sign_off,
    checklist_problem,
    checklist_supersede,
    retro_review_owe,
    retro_reviews_escalate,
)
from .freeze_windows import (
    freeze_override_check,
    freeze_override_record,
    freeze_window_cancel,
    freeze_window_create,
    freeze_window_update,
)
from .policies import (
    APPROVAL_POLICY_EDITABLE_FIELDS,
    APPROVAL_POLICY_READ_ONLY_FIELDS,
    RequirementSpec,
    approval_policy_create,
    approval_policy_update,
)
from .templates import (
    TemplateItemSpec,
    checklist_template_activate,
    checklist_template_create,
    checklist_template_new_version,
    checklist_template_update,
)

__all__ = [
    "APPROVAL_INCOMPLETE",
    "APPROVAL_POLICY_EDITABLE_FIELDS",
    "APPROVAL_POLICY_READ_ONLY_FIELDS",
    "RETRO_REVIEW_DUE",
    "SIGNER_GROUPS",
    "RequirementSpec",
    "TemplateItemSpec",
    "approval_policy_create",
    "approval_policy_update",
    "approval_record",
    "approvals_dismiss",
    "approvals_expire",
    "approve_if_ready",
    "checklist_freeze",
    "checklist_gate_guard",
    "checklist_instantiate",
    "checklist_item_mark_na",
    "checklist_item_sign_off",
    "checklist_problem",
    "checklist_supersede",
    "checklist_template_activate",
    "checklist_template_create",
    "checklist_template_new_version",
    "checklist_template_update",
    "freeze_override_check",
    "freeze_override_record",
    "freeze_window_cancel",
    "freeze_window_create",
    "freeze_window_update",
    "is_author_or_editor",
    "lock_release",
    "resolve_group",
    "retro_review_owe",
    "retro_reviews_escalate",
    "user_in_group",
]
