from django.db import models


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Audience(models.TextChoices):
    BUYERS = "buyers", "Buyers"
    SELLERS = "sellers", "Sellers"
    CREATORS = "creators", "Creators"


class ReleaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    ROLLING_OUT = "rolling_out", "Rolling out"
    PAUSED = "paused", "Paused"
    LAUNCHED = "launched", "Launched"
    VERIFYING = "verifying", "Verifying"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    ROLLED_BACK = "rolled_back", "Rolled back"


# Named state groups: every other module asks these instead of listing states itself.
TERMINAL_STATES = frozenset(
    {ReleaseStatus.VERIFIED, ReleaseStatus.REJECTED, ReleaseStatus.CANCELLED, ReleaseStatus.ROLLED_BACK}
)
EDITABLE_STATES = frozenset({ReleaseStatus.DRAFT})
# A release in one of these holds its markets for its solution: no other release may roll out there.
IN_ROLLOUT_STATES = frozenset({ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED})
# Live traffic sees the release; guardrails evaluate these.
LIVE_STATES = frozenset(
    {ReleaseStatus.ROLLING_OUT, ReleaseStatus.PAUSED, ReleaseStatus.LAUNCHED, ReleaseStatus.VERIFYING}
)
