from __future__ import annotations

from typing import Any

import pytest

from releases.choices import RiskLevel
from tests.governance.helpers import submitted


@pytest.fixture
def crew(program_manager: Any, second_program_manager: Any, reviewer: Any, second_reviewer: Any, oncall: Any) -> list:
    """Everyone who approves and signs, none of them the author."""
    return [program_manager, second_program_manager, reviewer, second_reviewer, oncall]


@pytest.fixture
def high_release(author: Any) -> Any:
    """A high-risk release in review: Program managers ×1 + Reviewers ×2, and a review checklist."""
    return submitted(author=author, risk_level=RiskLevel.HIGH)
