import pytest

from governance.models import Approval, Checklist
from releases.choices import ReleaseStatus
from tests.governance.helpers import rolling_out, submitted


@pytest.mark.django_db
def test_high_risk_walk(author, program_manager, reviewer, second_reviewer, oncall):
    release = submitted(author=author)
    assert release.status == ReleaseStatus.IN_REVIEW
    assert Checklist.objects.filter(release=release, gate="review").exists()
    release = rolling_out(release, [program_manager, reviewer, second_reviewer, oncall], program_manager)
    assert release.status == ReleaseStatus.ROLLING_OUT
    assert Approval.objects.filter(release=release).count() == 3
