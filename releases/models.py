"""Automation solutions, their releases and the staged rollout plan of each release."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.canonical import compute_content_hash

from .choices import IN_ROLLOUT_STATES, LIVE_STATES, Audience, ReleaseStatus, RiskLevel
from .markets import known_markets

if TYPE_CHECKING:
    from collections.abc import Iterable


def validate_market_codes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(code, str) and code.strip() for code in value):
        raise ValidationError("Markets must be a list of market codes such as ['US', 'DE'].")
    unknown = [code for code in value if code not in known_markets()]
    if unknown:
        shown = ", ".join(repr(code[:20]) for code in unknown[:5])
        raise ValidationError(f"Unknown market code(s) {shown}: use ISO 3166-1 alpha-2 codes such as US, DE, GB.")
    if len(set(value)) != len(value):
        raise ValidationError("Markets must not repeat.")


# The history change reasons of a release's content writes (release_create, release_update): separation of duties
# reads them to find everyone who wrote a release's content, in one query.
CONTENT_CREATED = "Created"
CONTENT_EDITED = "Edited"
CONTENT_WRITE_REASONS = (CONTENT_CREATED, CONTENT_EDITED)


class AutomationSolution(models.Model):
    """A customer-service chatbot scenario (e.g. 'Seller payout questions'); every change to it is a Release."""

    key = models.SlugField(max_length=80, unique=True, help_text="Stable identifier, e.g. 'buyer-refunds'.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_solutions"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReleaseQuerySet(models.QuerySet["Release"]):
    def with_related(self) -> ReleaseQuerySet:
        return self.select_related("solution", "author", "last_editor", "current_stage")

    def live(self) -> ReleaseQuerySet:
        return self.filter(status__in=LIVE_STATES)

    def in_rollout(self) -> ReleaseQuerySet:
        return self.filter(status__in=IN_ROLLOUT_STATES)


class Release(models.Model):
    """One change to an automation solution, moving through the lifecycle in ``releases.state_machine``.

    The content fields (prompt, flow, model, tools, knowledge base, markets and the rollout stages) are hashed
    into ``content_hash``; approvals are bound to that hash and the content is frozen outside ``draft``.
    """

    solution = models.ForeignKey(AutomationSolution, on_delete=models.PROTECT, related_name="releases")
    version = models.PositiveIntegerField(editable=False)
    title = models.CharField(max_length=200)
    change_summary = models.TextField(blank=True)
    risk_level = models.CharField(max_length=16, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    is_emergency = models.BooleanField(
        default=False, help_text="Emergency releases follow a reduced policy and owe a retro-review."
    )

    # Content: everything below is part of content_hash.
    system_prompt = models.TextField(blank=True, help_text="Prompt / system instructions of the chatbot.")
    resolution_flow = models.JSONField(default=dict, blank=True, help_text="Resolution flow definition (JSON).")
    model_name = models.CharField(max_length=120, blank=True, help_text="LLM used, e.g. 'gpt-4o-2024-08-06'.")
    model_parameters = models.JSONField(default=dict, blank=True, help_text="e.g. {'temperature': 0.2}.")
    tools = models.JSONField(default=list, blank=True, help_text="Tool names the bot may call.")
    knowledge_base_version = models.CharField(max_length=120, blank=True)
    markets = models.JSONField(default=list, blank=True, validators=[validate_market_codes])
    content_hash = models.CharField(max_length=64, editable=False)

    status = models.CharField(
        max_length=16, choices=ReleaseStatus.choices, default=ReleaseStatus.DRAFT, editable=False, db_index=True
    )
    current_stage = models.ForeignKey(
        "RolloutStage", on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="+"
    )
    stage_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    auto_promote = models.BooleanField(
        default=False, help_text="Let the system promote stages once hold time, sample and guardrails allow."
    )
    verification_window = models.DurationField(default=timedelta(days=7))

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="authored_releases")
    last_editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="edited_releases", editable=False
    )
    # Ownership (releases/README.md): the author and the co-authors edit and submit the draft; a program manager
    # may reassign both (``release_reassign``), every change audited.
    co_authors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="co_authored_releases",
        help_text="Besides the author, who may edit and submit this draft.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True, editable=False)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    rollout_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    verification_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)

    # The co-author set is history-tracked too, so "who could edit this draft when" can be answered.
    history = HistoricalRecords(m2m_fields=[co_authors])
    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["solution", "version"], name="release_unique_version_per_solution"),
        ]
        # The lists' order (newest first; the admin adds the id as a tie-break): a page of them is read from the
        # index instead of sorting every release.
        indexes = [models.Index(fields=["-created_at", "-id"], name="release_newest_idx")]
        permissions = [
            ("submit_release", "Can submit a release for review"),
            ("review_release", "Can request changes to or reject a release in review"),
            ("approve_release", "Can approve a release"),
            ("manage_rollout", "Can start, promote, resume, launch and verify a rollout"),
            ("emergency_stop", "Can pause or roll back a live release"),
        ]

    def __str__(self) -> str:
        return f"{self.solution.key} v{self.version}: {self.title}"

    @property
    def ordered_stages(self) -> Iterable[RolloutStage]:
        return sorted(self.stages.all(), key=lambda stage: stage.position)

    def content_snapshot(self, stages: Iterable[RolloutStage] | None = None) -> dict[str, object]:
        stage_rows = stages if stages is not None else self.ordered_stages
        return {
            "system_prompt": self.system_prompt,
            "resolution_flow": self.resolution_flow,
            "model_name": self.model_name,
            "model_parameters": self.model_parameters,
            "tools": self.tools,
            "knowledge_base_version": self.knowledge_base_version,
            "markets": sorted(self.markets or []),
            "stages": [stage.content_snapshot() for stage in sorted(stage_rows, key=lambda s: s.position)],
        }

    def compute_content_hash(self, stages: Iterable[RolloutStage] | None = None) -> str:
        return compute_content_hash(self.content_snapshot(stages))


class RolloutStage(models.Model):
    """One step of a staged rollout: a traffic share in some markets, held for a time and a minimum sample."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=80)
    traffic_percent = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(100)])
    markets = models.JSONField(
        default=list, blank=True, help_text="Markets of this stage; empty means all of the release's markets."
    )
    min_hold = models.DurationField(default=timedelta(hours=1), help_text="Minimum time before promotion.")
    min_sample_size = models.PositiveIntegerField(default=0, help_text="Conversations needed before promotion.")
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["release", "position"]
        constraints = [
            models.UniqueConstraint(fields=["release", "position"], name="stage_unique_position"),
            models.CheckConstraint(
                condition=models.Q(traffic_percent__gte=1, traffic_percent__lte=100), name="stage_percent_1_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} ({self.traffic_percent}%)"

    def content_snapshot(self) -> dict[str, object]:
        return {
            "position": self.position,
            "name": self.name,
            "traffic_percent": self.traffic_percent,
            "markets": sorted(self.markets or []),
            "min_hold_seconds": int(self.min_hold.total_seconds()),
            "min_sample_size": self.min_sample_size,
        }

    def effective_markets(self) -> list[str]:
        return list(self.markets) or list(self.release.markets)
