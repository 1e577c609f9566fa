"""Promote is a compare-and-set on the stage it promotes from."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import DomainError
from releases import services
from releases.choices import ReleaseStatus as S
from releases.models import Release
from releases.services import StageSpec
from tests.concurrency import raised, run_at_once
from tests.factories import advance_release, make_release

THREE_STAGES = (
    StageSpec(name="Canary", traffic_percent=5),
    StageSpec(name="Half", traffic_percent=50),
    StageSpec(name="Full", traffic_percent=100),
)


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_overridden_promotes_from_the_canary_promote_once(
    author: Any, program_manager: Any
) -> None:
    """The attack: 20 simultaneous promotes with override took the release canary → launched in under a second
    (three of them succeeded, one per stage). Each names the stage it judged: exactly one wins."""
    release = advance_release(
        make_release(author=author, stages=THREE_STAGES), S.ROLLING_OUT, program_manager=program_manager
    )
    assert release.current_stage.position == 1

    def promote() -> Release:
        return services.release_promote(
            release=release, actor=program_manager, override=True, reason="Sample reached", from_stage=1
        )

    results = run_at_once(*[promote for _ in range(20)])
    failures = raised(results)
    assert len(results) - len(failures) == 1
    assert {getattr(exc, "code", type(exc).__name__) for exc in failures} == {"stale_stage"}
    assert all(isinstance(exc, DomainError) for exc in failures)
    release.refresh_from_db()
    assert release.status == S.ROLLING_OUT and release.current_stage.position == 2
    assert release.history.filter(history_change_reason="Sample reached").count() == 1
