"""The admin home ("needs me now"): per role, the work waiting and where to do it. Reads only, from set-based
selectors: ``cockpit.home`` (rollouts, incidents, freeze windows, audit log) and governance's queues."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.actors import request_actor
from governance import selectors as governance_selectors
from releases.choices import LIVE_STATES

from . import cockpit
from .models import Incident
from .state_machine import TRIAGE_PERMISSION

MINE_SHOWN = 20


def home_context(request: HttpRequest) -> dict[str, Any]:
    user = request_actor(request)
    is_manager = user.has_perm("releases.manage_rollout")
    is_oncall = user.has_perm(TRIAGE_PERMISSION)
    # Whoever may approve or sign sees what waits on them; reviewers see it first.
    is_reviewer = not is_manager and not is_oncall and user.has_perm("governance.view_checklistitem")
    data = cockpit.home()
    approvals = governance_selectors.awaiting_approval_by(user=user) if user.has_perm("releases.view_release") else []
    sign_offs = (
        governance_selectors.checklist_items_awaiting_sign_off_by(user=user)
        if user.has_perm("governance.view_checklistitem")
        else []
    )
    # The open incidents assigned to me, whether or not they made the first lines of the queue.
    mine = (
        list(Incident.objects.open().filter(assignee=user).order_by("opened_at", "id")[:MINE_SHOWN])
        if is_oncall
        else []
    )
    return {
        "home": data,
        "request": request,
        "is_manager": is_manager,
        "is_oncall": is_oncall,
        "is_reviewer": is_reviewer,
        "approvals": approvals,
        "sign_offs": sign_offs,
        "waiting_count": len(approvals) + len(sign_offs),
        "mine": mine,
        "can_view_audit": user.has_perm("core.view_auditevent"),
        # The full lists behind the home's first lines: live releases, and open incidents (that list's default).
        "live_releases_query": "status__in=" + ",".join(sorted(LIVE_STATES)),
    }
