"""Contact-reason volumes (what customers contact us about, and how much human work is left), the opportunity
backlog built from them, and the scoring weights the backlog is ranked with."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.text import slugify
from simple_history.models import HistoricalRecords

from releases.choices import Audience

from .choices import OpportunityStatus, VolumeArm


class ContactReasonVolumeQuerySet(models.QuerySet["ContactReasonVolume"]):
    def with_related(self) -> ContactReasonVolumeQuerySet:
        return self.select_related("solution")


class ContactReasonVolume(models.Model):
    """Conversations of one contact reason (intent), market, audience and arm over one time window, split by the
    automation solution that served them (``served_by`` = the solution's key, blank when no solution did).

    Not history-tracked: rows are measurements upserted in bulk (idempotent on the natural key), like metric
    samples; the audit of who sent them is the ingestion's caller and ``source``.
    """

    source = models.CharField(max_length=64, default="api")
    contact_reason = models.SlugField(max_length=80, help_text="Intent slug, e.g. 'refund-status'.")
    market = models.CharField(max_length=16)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    arm = models.CharField(max_length=16, choices=VolumeArm.choices, default=VolumeArm.ALL)
    # The solution's key is part of the natural key (blank = a human served them from the start): a nullable
    # foreign key would make every "no solution" row distinct on SQLite and re-sending would duplicate it.
    served_by = models.CharField(max_length=80, blank=True, default="")
    solution = models.ForeignKey(
        "releases.AutomationSolution",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contact_reason_volumes",
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    conversations = models.BigIntegerField()
    handed_to_human = models.BigIntegerField()
    abandoned = models.BigIntegerField()
    avg_handle_minutes = models.FloatField(help_text="Average human handle time of the handed-off conversations.")
    csat_responses = models.BigIntegerField(default=0)
    csat_positive = models.BigIntegerField(default=0)
    received_at = models.DateTimeField()

    objects = ContactReasonVolumeQuerySet.as_manager()

    class Meta:
        ordering = ["-window_start", "contact_reason", "market"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "contact_reason", "market", "audience", "arm", "served_by", "window_start"],
                name="contact_reason_volume_natural_key",
            ),
            models.CheckConstraint(condition=models.Q(window_end__gt=models.F("window_start")), name="crv_window"),
            models.CheckConstraint(
                condition=models.Q(
                    handed_to_human__gte=0,
                    abandoned__gte=0,
                    csat_positive__gte=0,
                    avg_handle_minutes__gte=0,
                    csat_responses__gte=models.F("csat_positive"),
                    conversations__gte=models.F("handed_to_human") + models.F("abandoned"),
                ),
                name="crv_counts_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["window_start", "contact_reason"], name="crv_window_reason_idx"),
            models.Index(fields=["contact_reason", "market", "window_start"], name="crv_reason_market_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_reason} {self.market}/{self.audience} {self.window_start:%Y-%m-%d}"


class GapAnalysis(ContactReasonVolume):
    """The gap-analysis admin page: a proxy so it is listed under Opportunities on the admin index, with its
    own view permission."""

    class Meta:
        proxy = True
        verbose_name = "gap analysis"
        verbose_name_plural = "gap analysis"


def validate_reason_slugs(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("List at least one contact reason.")
    for item in value:
        if not isinstance(item, str) or not item or slugify(item) != item or len(item) > 80:
            raise ValidationError(f"{item!r} is not a contact-reason slug.")
    if len(set(value)) != len(value):
        raise ValidationError("A contact reason is listed twice.")


def validate_markets(value: object) -> None:
    if not isinstance(value, list):
        raise ValidationError("A list of market codes.")
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item) > 16:
            raise ValidationError(f"{item!r} is not a market code.")
    if len(set(value)) != len(value):
        raise ValidationError("A market is listed twice.")


class OpportunityQuerySet(models.QuerySet["Opportunity"]):
    def with_related(self) -> OpportunityQuerySet:
        return self.select_related("owner", "solution").prefetch_related("releases")

    def open(self) -> OpportunityQuerySet:
        from .choices import OPEN_STATES

        return self.filter(status__in=OPEN_STATES)


class Opportunity(models.Model):
    """A gap worth automating: the contact reasons it targets, the bet (hypothesis, expected lift, effort,
    confidence), the solution and releases that deliver it, and — once measured — what it actually achieved."""

    title = models.CharField(max_length=200)
    contact_reasons = models.JSONField(validators=[validate_reason_slugs], help_text="Contact-reason slugs.")
    hypothesis = models.TextField(help_text="Why automating this works, and what customers will get.")
    expected_containment_lift = models.FloatField(
        validators=[MinValueValidator(0.001), MaxValueValidator(1.0)],
        help_text="Expected rise of the containment rate on the targeted reasons, as a fraction (0.15 = +15 pp).",
    )
    effort_weeks = models.FloatField(
        validators=[MinValueValidator(0.1), MaxValueValidator(520)], help_text="Estimated effort in person-weeks."
    )
    confidence = models.FloatField(
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text="How sure we are of the estimates, 0–1 (RICE: 1 high, 0.8 medium, 0.5 low).",
    )
    markets = models.JSONField(
        default=list, blank=True, validators=[validate_markets], help_text="Empty: every market."
    )
    audience = models.CharField(max_length=16, choices=Audience.choices, blank=True, help_text="Blank: every one.")
    solution = models.ForeignKey(
        "releases.AutomationSolution",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="opportunities",
        help_text="The solution that will serve these contact reasons.",
    )
    releases = models.ManyToManyField(
        "releases.Release", blank=True, related_name="opportunities", help_text="The releases that deliver it."
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="opportunities")
    status = models.CharField(
        max_length=16, choices=OpportunityStatus.choices, default=OpportunityStatus.PROPOSED, editable=False
    )
    # Snapshot of the prediction when accepted, so the outcome is compared with what was promised, not with
    # a number that drifted with later contact-reason data.
    predicted_weekly_conversations = models.FloatField(null=True, blank=True, editable=False)
    predicted_hours_saved_per_week = models.FloatField(null=True, blank=True, editable=False)
    # When the delivered change reached customers: the cut between "before" and "after" in the measurement.
    live_since = models.DateTimeField(null=True, blank=True, editable=False)
    realized_containment_lift = models.FloatField(null=True, blank=True, editable=False)
    realized_hours_saved_per_week = models.FloatField(null=True, blank=True, editable=False)
    measurement = models.JSONField(default=dict, blank=True, editable=False)
    drop_reason = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True, editable=False)
    measured_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords()
    objects = OpportunityQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "opportunities"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=OpportunityStatus.values), name="opportunity_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class ScoringWeights(models.Model):
    """Exponents of the RICE factors: score = reachʷʳ × impactʷⁱ × confidenceʷᶜ ÷ effortʷᵉ. All 1 is plain RICE;
    raising a weight makes that factor count more in the ranking. One row (pk 1)."""

    reach = models.FloatField(default=1.0, validators=[MinValueValidator(0), MaxValueValidator(3)])
    impact = models.FloatField(default=1.0, validators=[MinValueValidator(0), MaxValueValidator(3)])
    confidence = models.FloatField(default=1.0, validators=[MinValueValidator(0), MaxValueValidator(3)])
    effort = models.FloatField(default=1.0, validators=[MinValueValidator(0), MaxValueValidator(3)])
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = "scoring weights"
        verbose_name_plural = "scoring weights"

    def __str__(self) -> str:
        return f"R^{self.reach:g} × I^{self.impact:g} × C^{self.confidence:g} ÷ E^{self.effort:g}"
