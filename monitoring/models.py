"""Metrics, guardrails, evaluations, incidents and their notifications.

History: django-simple-history tracks the rows people configure or act on (metric definitions, guardrails,
incidents, notification endpoints). It does not track ``MetricSample``, ``Evaluation``, ``IncidentEvent`` or
``NotificationOutbox``: samples and evaluations are written in bulk (an upsert of up to 10,000 rows, one insert per
evaluation batch) which simple-history cannot record, and they are themselves immutable or machine-owned logs —
an evaluation is never edited, an incident event is append-only, an outbox row only moves through delivery states
by compare-and-set updates.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from releases.choices import RiskLevel

from .choices import (
    ACK_DEADLINES,
    OPEN_INCIDENT_STATES,
    Arm,
    BaselineSource,
    Channel,
    DeliveryStatus,
    Direction,
    GuardrailAction,
    GuardrailScope,
    IncidentEventKind,
    IncidentKind,
    IncidentStatus,
    MetricKind,
    Outcome,
    Resolution,
    Severity,
    UnitOfAnalysis,
    VarianceMethod,
)
from .judging import tuning_n_for


class MetricDefinition(models.Model):
    """What a metric counts. Seeded by a data migration; samples record the ``version`` they were computed with."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=8, choices=MetricKind.choices, default=MetricKind.RATE)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    numerator_definition = models.TextField(blank=True)
    denominator_definition = models.TextField(blank=True)
    unit = models.CharField(max_length=16, blank=True, help_text="For gauges, e.g. 'ms'.")
    version = models.PositiveIntegerField(default=1)
    maturation_period = models.DurationField(
        default=timedelta(0),
        help_text="A window's outcome is final only this long after it ends; younger windows are not evaluated.",
    )
    # The range a sample may take, checked row by row at ingestion: an absurd value (1e308 ms) is a bad row, not a
    # number that overflows the evaluation's aggregates for every release in the batch.
    min_value = models.FloatField(
        null=True,
        blank=True,
        help_text="Smallest accepted sample: a rate's numerator and denominator (counts), a gauge's value. "
        "Empty: no bound.",
    )
    max_value = models.FloatField(
        null=True,
        blank=True,
        help_text="Largest accepted sample: a rate's numerator and denominator (counts), a gauge's value. "
        "Empty: no bound.",
    )

    # What one observation is, and how the variance is computed (METRICS.md, "Units, clustering and gauges").
    unit_of_analysis = models.CharField(
        max_length=16,
        choices=UnitOfAnalysis.choices,
        default=UnitOfAnalysis.CONVERSATION,
        help_text="Traffic is split by conversation. A turn-level rate (error_rate) is judged with the delta method "
        "when its samples carry the per-conversation sums, else with the design effect below.",
    )
    design_effect = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(1.0)],
        help_text="Variance inflation declared for a turn-level rate whose samples lack the per-conversation sums.",
    )
    slow_threshold_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="For a latency rate (slow_turn_rate): the L a turn is slower than to count in the numerator.",
    )
    source_of_record = models.CharField(
        max_length=64,
        default="api",
        help_text="The only source whose samples are judged; other sources are stored and shown as discrepancies.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_value__isnull=True)
                | models.Q(max_value__isnull=True)
                | models.Q(min_value__lte=models.F("max_value")),
                name="metric_definition_range",
            )
        ]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        for field in ("min_value", "max_value"):
            bound = getattr(self, field)
            if bound is not None and not math.isfinite(bound):
                raise ValidationError({field: "A finite number, or empty for no bound."})
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValidationError({"max_value": "Must not be below the minimum."})


class MetricSampleQuerySet(models.QuerySet["MetricSample"]):
    def with_related(self) -> MetricSampleQuerySet:
        return self.select_related("metric", "release")


class MetricSample(models.Model):
    """Counts for one release, metric, market and arm over one time window (idempotent on its natural key)."""

    source = models.CharField(max_length=64, default="api")
    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="metric_samples")
    metric = models.ForeignKey(MetricDefinition, on_delete=models.PROTECT, related_name="samples")
    metric_version = models.PositiveIntegerField()
    market = models.CharField(max_length=16)
    arm = models.CharField(max_length=16, choices=Arm.choices, default=Arm.TREATMENT)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    numerator = models.BigIntegerField(null=True, blank=True)
    denominator = models.BigIntegerField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    # Per-unit sums for the delta method (x = numerator per conversation, y = denominator per conversation), sent
    # for a turn-level rate; all or none.
    units = models.BigIntegerField(null=True, blank=True, help_text="Conversations k behind the turn counts.")
    sum_x = models.FloatField(null=True, blank=True)
    sum_y = models.FloatField(null=True, blank=True)
    sum_xx = models.FloatField(null=True, blank=True)
    sum_yy = models.FloatField(null=True, blank=True)
    sum_xy = models.FloatField(null=True, blank=True)
    received_at = models.DateTimeField()

    objects = MetricSampleQuerySet.as_manager()

    class Meta:
        ordering = ["-window_start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "release", "metric", "market", "arm", "window_start"],
                name="metric_sample_natural_key",
            ),
            models.CheckConstraint(condition=models.Q(window_end__gt=models.F("window_start")), name="sample_window"),
            models.CheckConstraint(
                condition=models.Q(numerator__isnull=True)
                | models.Q(numerator__gte=0, denominator__gte=models.F("numerator")),
                name="sample_numerator_within_denominator",
            ),
        ]
        indexes = [models.Index(fields=["release", "metric", "market", "window_end"], name="sample_eval_idx")]

    def __str__(self) -> str:
        return f"{self.metric_id}@{self.release_id}/{self.market}/{self.arm} {self.window_start:%Y-%m-%d %H:%M}"


class GuardrailQuerySet(models.QuerySet["Guardrail"]):
    def active(self) -> GuardrailQuerySet:
        return self.filter(is_active=True)

    def with_related(self) -> GuardrailQuerySet:
        return self.select_related("metric", "release", "release__solution", "solution")


class Guardrail(models.Model):
    """A rule on one metric for a release, every release of a solution, or (default) every release of a risk level.

    ``failure_limit`` is the number of failed evaluations tolerated: the guardrail is breached when
    failed > failure_limit (0 breaches on the first failure, 3 on the fourth, -1 never).
    ``consecutive_success_limit`` passes in a row reset the count and auto-resolve the incident.
    """

    name = models.CharField(max_length=200)
    metric = models.ForeignKey(MetricDefinition, on_delete=models.PROTECT, related_name="guardrails")
    scope = models.CharField(max_length=16, choices=GuardrailScope.choices)
    release = models.ForeignKey(
        "releases.Release", on_delete=models.PROTECT, null=True, blank=True, related_name="guardrails"
    )
    solution = models.ForeignKey(
        "releases.AutomationSolution", on_delete=models.PROTECT, null=True, blank=True, related_name="guardrails"
    )
    risk_level = models.CharField(max_length=16, choices=RiskLevel.choices, blank=True)

    absolute_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Bound on the bad side: a maximum for lower-is-better metrics, a minimum for higher-is-better.",
    )
    relative_margin = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Tolerated degradation against the baseline, in rate points (0.02 = 2 points).",
    )
    min_sample_size = models.PositiveIntegerField(
        default=500, help_text="Below this denominator the outcome is 'insufficient data', never a failure."
    )
    evaluation_window = models.DurationField(
        default=timedelta(hours=24),
        help_text="Not used for judging any more: the cohort is every matured sample since the current phase began "
        "(a rolling window voids the always-valid guarantee). Kept for the record of older evaluations.",
    )
    evaluation_interval = models.DurationField(
        default=timedelta(minutes=5),
        help_text="Not used for judging any more: a look happens when the cohort's data changes.",
    )
    bonferroni = models.BooleanField(
        default=True,
        help_text="Share the release's α with its other guardrails × markets (α/K each). Off: this guardrail "
        "keeps its whole α (and the release's false-alarm rate grows by it).",
    )
    planned_treatment_share = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(0.99)],
        help_text="Treatment share of treatment + control conversations for the sample-ratio check. Empty: the "
        "stage's traffic percent below 100%, else an even split.",
    )
    confidence = models.FloatField(default=0.95, validators=[MinValueValidator(0.5), MaxValueValidator(0.999)])
    failure_limit = models.IntegerField(default=0, validators=[MinValueValidator(-1)])
    consecutive_success_limit = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1)])
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.SEV3)
    action = models.CharField(max_length=16, choices=GuardrailAction.choices, default=GuardrailAction.INCIDENT)
    dry_run = models.BooleanField(default=False, help_text="Evaluate and show, never open incidents or act.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = GuardrailQuerySet.as_manager()

    class Meta:
        ordering = ["metric__key", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope=GuardrailScope.RELEASE, release__isnull=False, solution__isnull=True, risk_level="")
                    | models.Q(
                        scope=GuardrailScope.SOLUTION, release__isnull=True, solution__isnull=False, risk_level=""
                    )
                    | (
                        models.Q(scope=GuardrailScope.RISK_LEVEL, release__isnull=True, solution__isnull=True)
                        & ~models.Q(risk_level="")
                    )
                ),
                name="guardrail_scope_target",
            ),
            models.CheckConstraint(
                condition=models.Q(absolute_threshold__isnull=False) | models.Q(relative_margin__isnull=False),
                name="guardrail_has_a_rule",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        targets = {
            GuardrailScope.RELEASE: ("release", self.release_id is not None),
            GuardrailScope.SOLUTION: ("solution", self.solution_id is not None),
            GuardrailScope.RISK_LEVEL: ("risk_level", bool(self.risk_level)),
        }
        for scope, (field, present) in targets.items():
            if scope == self.scope and not present:
                errors.setdefault(field, []).append(f"Required for scope '{scope}'.")
            if scope != self.scope and present:
                errors.setdefault(field, []).append(f"Must be empty for scope '{self.scope}'.")
        if self.absolute_threshold is None and self.relative_margin is None:
            errors.setdefault("absolute_threshold", []).append("Set an absolute threshold, a relative margin or both.")
        if self.metric_id is not None:
            metric = self.metric
            threshold = self.absolute_threshold
            if metric.kind == MetricKind.RATE and threshold is not None and not 0 <= threshold <= 1:
                errors.setdefault("absolute_threshold", []).append("A rate threshold lies between 0 and 1.")
            if metric.kind == MetricKind.GAUGE and self.relative_margin is not None:
                errors.setdefault("relative_margin", []).append("Relative guardrails need a rate metric.")
        if self.evaluation_interval is not None and self.evaluation_interval < timedelta(minutes=1):
            errors.setdefault("evaluation_interval", []).append("At least one minute.")
        if self.evaluation_window is not None and self.evaluation_window <= timedelta(0):
            errors.setdefault("evaluation_window", []).append("Must be positive.")
        if errors:
            raise ValidationError(errors)

    @property
    def tuning_n(self) -> int:
        return tuning_n_for(self.min_sample_size)


class Evaluation(models.Model):
    """One look of one guardrail at one release and market: the cohort of the current phase (``window_start`` is
    the phase start) as it was when ``samples`` matured samples had arrived, the latest at ``data_through``.
    ``window_end`` is the end of the latest window in the cohort. The same data is never looked at twice."""

    # No index of their own: each is the first column of a composite index below, and a cycle writes ~180,000
    # evaluations at a time, every index paid for on each row.
    guardrail = models.ForeignKey(Guardrail, on_delete=models.PROTECT, related_name="evaluations", db_index=False)
    release = models.ForeignKey(
        "releases.Release", on_delete=models.PROTECT, related_name="evaluations", db_index=False
    )
    market = models.CharField(max_length=16)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    observed = models.FloatField(null=True, blank=True)
    lower = models.FloatField(null=True, blank=True)
    upper = models.FloatField(null=True, blank=True)
    n = models.BigIntegerField(default=0)
    baseline = models.FloatField(null=True, blank=True)
    baseline_n = models.BigIntegerField(default=0)
    baseline_source = models.CharField(max_length=20, choices=BaselineSource.choices, blank=True)
    difference_lower = models.FloatField(null=True, blank=True)
    difference_upper = models.FloatField(null=True, blank=True)
    # The guardrail's counters after this evaluation (see Guardrail): a state carried from one look to the next.
    failures = models.PositiveIntegerField(default=0)
    consecutive_passes = models.PositiveIntegerField(default=0)
    breached = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)
    detail = models.TextField(blank=True)
    reason = models.CharField(max_length=40, blank=True, help_text="Why the outcome is not a verdict, in short.")
    samples = models.PositiveIntegerField(default=0, help_text="Matured samples (both arms) this look saw.")
    data_through = models.DateTimeField(help_text="The latest receipt among them (the phase start when none).")
    confidence = models.FloatField(null=True, blank=True, help_text="Per-sequence confidence after the α split.")
    sequences = models.PositiveIntegerField(default=1, help_text="K: the release's guardrails × markets sharing α.")
    variance_method = models.CharField(max_length=16, choices=VarianceMethod.choices, blank=True)
    sample_ratio_mismatch = models.BooleanField(default=False)
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["guardrail", "release", "market", "window_start", "samples", "data_through"],
                name="evaluation_one_per_look",
            )
        ]
        indexes = [
            models.Index(fields=["release", "-window_end"], name="evaluation_release_idx"),
            models.Index(fields=["guardrail", "release", "market", "-id"], name="evaluation_latest_idx"),
            # The looks that are not a plain pass: few, and all the home's ranking of live releases reads.
            models.Index(
                fields=["release"],
                name="evaluation_problem_idx",
                condition=models.Q(dry_run=False) & (~models.Q(outcome="pass") | models.Q(breached=True)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.guardrail_id}/{self.release_id}/{self.market} @ {self.window_end:%Y-%m-%d %H:%M}: {self.outcome}"


class EvaluationLock(models.Model):
    """One row per release whose looks have been taken: evaluations of a release serialize on this row's lock.

    A row lock, unlike an advisory lock, takes no slot in PostgreSQL's shared lock table (64 × max_connections
    for the whole server), so one transaction can hold the locks of every live release, however large the fleet,
    and a cycle costs the same handful of statements at 1,000 releases as at 10,000."""

    release = models.OneToOneField("releases.Release", on_delete=models.CASCADE, primary_key=True, related_name="+")

    def __str__(self) -> str:
        return f"evaluation lock of release {self.release_id}"


class IncidentQuerySet(models.QuerySet["Incident"]):
    def open(self) -> IncidentQuerySet:
        return self.filter(status__in=OPEN_INCIDENT_STATES)

    def with_related(self) -> IncidentQuerySet:
        return self.select_related("release", "release__solution", "guardrail", "guardrail__metric", "assignee")


def incident_dedup_key(*, release_id: int, guardrail_id: int, market: str) -> str:
    return f"{release_id}:{guardrail_id}:{market}"


class Incident(models.Model):
    """A failing guardrail on one release and market. At most one open incident per ``dedup_key``."""

    title = models.CharField(max_length=300)
    dedup_key = models.CharField(max_length=120, db_index=True, editable=False)
    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="incidents")
    guardrail = models.ForeignKey(Guardrail, on_delete=models.PROTECT, related_name="incidents")
    market = models.CharField(max_length=16)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.TRIGGERED, editable=False
    )
    severity = models.CharField(max_length=8, choices=Severity.choices)
    kind = models.CharField(
        max_length=16,
        choices=IncidentKind.choices,
        default=IncidentKind.GUARDRAIL,
        editable=False,
        help_text="A data-quality incident (sample ratio mismatch) never pauses, rolls back or blocks the release.",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="assigned_incidents"
    )
    trigger_count = models.PositiveIntegerField(default=1, editable=False)
    opened_at = models.DateTimeField(editable=False)
    last_triggered_at = models.DateTimeField(editable=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    mitigated_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    escalated_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolution_note = models.TextField(blank=True)
    previous_incident = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reopened_as",
        help_text="The resolved incident of the same key this one follows.",
    )

    history = HistoricalRecords()
    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=models.Q(status__in=sorted(OPEN_INCIDENT_STATES)),
                name="incident_one_open_per_key",
            ),
            models.CheckConstraint(
                condition=models.Q(status=IncidentStatus.RESOLVED) | models.Q(resolution=""),
                name="incident_resolution_only_when_resolved",
            ),
        ]
        permissions = [("triage_incident", "Can acknowledge, assign, comment on, mitigate and resolve incidents")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_INCIDENT_STATES

    @property
    def ack_deadline(self) -> datetime:
        """When an unacknowledged incident escalates (its severity's deadline after it opened)."""
        return self.opened_at + ACK_DEADLINES[self.severity]


class IncidentEvent(models.Model):
    """One entry of an incident's timeline (append-only)."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=IncidentEventKind.choices)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.PROTECT, null=True, blank=True, related_name="incident_events"
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def actor_label(self) -> str:
        return self.actor.get_username() if self.actor_id and self.actor else "system"


class NotificationEndpoint(models.Model):
    """Where incident notifications go: a webhook URL (JSON POST) or an e-mail address."""

    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=500, help_text="A URL for webhooks, an address for e-mail.")
    min_severity = models.CharField(
        max_length=8,
        choices=Severity.choices,
        default=Severity.SEV4,
        help_text="Notify for incidents of this severity or more severe.",
    )
    is_active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"

    def clean(self) -> None:
        from django.core.validators import EmailValidator, URLValidator

        validator = URLValidator(schemes=["http", "https"]) if self.channel == Channel.WEBHOOK else EmailValidator()
        try:
            validator(self.target)
        except ValidationError as exc:
            raise ValidationError({"target": exc.messages}) from exc


class NotificationOutbox(models.Model):
    """A notification to deliver, written in the transaction of the incident event it announces."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="notifications")
    event = models.ForeignKey(IncidentEvent, on_delete=models.PROTECT, related_name="notifications")
    endpoint = models.ForeignKey(
        NotificationEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # 14 attempts on the backoff of services.notifications span about 26 hours, so a receiver down for a night
    # still gets the notification; after that the row is dead-lettered (status DEAD) until someone redrives it.
    max_attempts = models.PositiveIntegerField(default=14)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True, help_text="When its retries ran out (dead-lettered).")
    redrive_count = models.PositiveIntegerField(default=0, help_text="How often someone sent it back to delivery.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel} → {self.target}: {self.status}"
