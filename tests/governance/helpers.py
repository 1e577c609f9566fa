"""Shared steps of the governance tests: walking a release to a state through the real services."""

from __future__ import annotations

from typing import Any

from governance.demo import approve_per_policy, sign_checklist
from governance.models import ChecklistGate
from releases import services
from releases.choices import RiskLevel
from releases.models import Release
from tests.factories import make_release


def submitted(*, author: Any, risk_level: str = RiskLevel.HIGH, **fields: Any) -> Release:
    release = make_release(author=author, risk_level=risk_level, **fields)
    return services.release_submit(release=release, actor=author)


def approved(release: Release, people: list[Any]) -> Release:
    sign_checklist(release=release, gate=ChecklistGate.REVIEW, people=people)
    release = approve_per_policy(release=release, people=people)
    release.refresh_from_db()
    return release


def rolling_out(release: Release, people: list[Any], program_manager: Any) -> Release:
    release = approved(release, people)
    sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=people)
    return services.release_start_rollout(release=release, actor=program_manager)
