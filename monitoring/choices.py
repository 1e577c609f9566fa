from datetime import timedelta

from django.db import models

from . import statistics as st


class MetricKind(models.TextChoices):
    RATE = "rate", "Rate (numerator / denominator)"
    GAUGE = "gauge", "Gauge (value)"


class Direction(models.TextChoices):
    HIGHER = st.HIGHER, "Higher is better"
    LOWER = st.LOWER, "Lower is better"


class Arm(models.TextChoices):
    TREATMENT = "treatment", "Treatment (the release)"
    CONTROL = "control", "Control (concurrent baseline)"


class Outcome(models.TextChoices):
    PASS = st.PASS, "Pass"
    FAIL = st.FAIL, "Fail"
    INCONCLUSIVE = st.INCONCLUSIVE, "Inconclusive"
    INSUFFICIENT_DATA = st.INSUFFICIENT_DATA, "Insufficient data"
    ERROR = st.ERROR, "Error"


class BaselineSource(models.TextChoices):
    NONE = "", "None"
    CONTROL = "control", "Concurrent control arm"
    PREVIOUS_RELEASE = "previous_release", "Previous verified release"


class GuardrailScope(models.TextChoices):
    RELEASE = "release", "One release"
    SOLUTION = "solution", "Every release of a solution"
    RISK_LEVEL = "risk_level", "Default for a risk level"


class GuardrailAction(models.TextChoices):
    INCIDENT = "incident", "Open an incident"
    PAUSE = "pause", "Open an incident and pause the rollout"
    ROLLBACK = "rollback", "Open an incident and roll the release back"


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 (critical)"
    SEV2 = "sev2", "SEV2 (major)"
    SEV3 = "sev3", "SEV3 (minor)"
    SEV4 = "sev4", "SEV4 (low)"


# An incident not acknowledged within its severity's deadline escalates.
ACK_DEADLINES: dict[str, timedelta] = {
    Severity.SEV1: timedelta(minutes=15),
    Severity.SEV2: timedelta(minutes=30),
    Severity.SEV3: timedelta(hours=4),
    Severity.SEV4: timedelta(hours=24),
}
SEVERITY_RANK: dict[str, int] = {Severity.SEV1: 1, Severity.SEV2: 2, Severity.SEV3: 3, Severity.SEV4: 4}


class IncidentStatus(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"


OPEN_INCIDENT_STATES = frozenset({IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED})
# The states each triage step starts from (the services enforce them; the admin shows buttons from them).
ACKNOWLEDGEABLE_STATES = frozenset({IncidentStatus.TRIGGERED})
MITIGATABLE_STATES = frozenset({IncidentStatus.TRIGGERED, IncidentStatus.ACKNOWLEDGED})


class Resolution(models.TextChoices):
    AUTO_RECOVERED = "auto_recovered", "Recovered on its own (guardrail passing again)"
    FIXED = "fixed", "Fixed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FALSE_POSITIVE = "false_positive", "False positive"


# A person resolving an incident picks one of these; "auto_recovered" is the system's to give.
MANUAL_RESOLUTIONS = [choice for choice in Resolution.choices if choice[0] != Resolution.AUTO_RECOVERED]


class IncidentEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    RETRIGGERED = "retriggered", "Retriggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    ASSIGNED = "assigned", "Assigned"
    COMMENT = "comment", "Comment"
    MITIGATED = "mitigated", "Mitigated"
    ACTION_TAKEN = "action_taken", "Action taken"
    ACTION_FAILED = "action_failed", "Action failed"
    ESCALATED = "escalated", "Escalated"
    NOTIFICATION_SENT = "notification_sent", "Notification sent"
    NOTIFICATION_FAILED = "notification_failed", "Notification failed"
    RESOLVED = "resolved", "Resolved"


# Events that page people; a retrigger only adds to the timeline so an oscillating metric is not a page storm.
NOTIFYING_EVENTS = frozenset(
    {
        IncidentEventKind.OPENED,
        IncidentEventKind.ACTION_TAKEN,
        IncidentEventKind.ESCALATED,
        IncidentEventKind.RESOLVED,
    }
)


class Channel(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (JSON POST)"
    EMAIL = "email", "E-mail"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"  # before dead-lettering existed; migration 0003 moved these rows to DEAD
    DEAD = "dead", "Dead-lettered (retries exhausted; redrive it)"


class UnitOfAnalysis(models.TextChoices):
    CONVERSATION = "conversation", "Conversation (the randomisation unit)"
    TURN = "turn", "Turn (clustered in conversations)"


class VarianceMethod(models.TextChoices):
    BINOMIAL = "binomial", "Binomial (independent conversations)"
    DELTA = "delta_method", "Delta method over per-conversation sums"
    DESIGN_EFFECT = "design_effect", "Binomial × declared design effect (no per-conversation sums)"
    NONE = "none", "None: each gauge window compared with the bound"


class IncidentKind(models.TextChoices):
    GUARDRAIL = "guardrail", "Guardrail failing"
    DATA_QUALITY = "data_quality", "Data quality (no release action)"
