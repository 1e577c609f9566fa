from django.db import models


class OpportunityStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    ACCEPTED = "accepted", "Accepted"
    IN_DELIVERY = "in_delivery", "In delivery"
    DELIVERED = "delivered", "Delivered"
    MEASURED = "measured", "Measured"
    DROPPED = "dropped", "Dropped"


# Named state groups: the backlog is what is still open; terminal opportunities change no more.
TERMINAL_STATES = frozenset({OpportunityStatus.MEASURED, OpportunityStatus.DROPPED})
OPEN_STATES = frozenset(set(OpportunityStatus.values) - TERMINAL_STATES)
# Content (reasons, hypothesis, estimates) is frozen once accepted: the prediction the outcome is judged against
# must be the one that was accepted.
EDITABLE_STATES = frozenset({OpportunityStatus.PROPOSED})


class VolumeArm(models.TextChoices):
    """Which traffic a row counts. ``all`` when no experiment ran; ``treatment``/``control`` during a split."""

    ALL = "all", "All traffic"
    TREATMENT = "treatment", "Treatment"
    CONTROL = "control", "Control"
