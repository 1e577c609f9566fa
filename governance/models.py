"""Governance: the append-only audit log (approval policies, checklists and freeze windows join it here)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from releases.choices import RiskLevel
from releases.models import Release, validate_market_codes

# --- Approval policies and approvals --------------------------------------------------------------------------


class ApprovalPolicyQuerySet(models.QuerySet["ApprovalPolicy"]):
    def active(self) -> ApprovalPolicyQuerySet:
        return self.filter(is_active=True)

    def with_requirements(self) -> ApprovalPolicyQuerySet:
        return self.select_related("solution").prefetch_related(
            models.Prefetch("requirements", queryset=ApprovalRequirement.objects.select_related("group"))
        )


class ApprovalPolicy(models.Model):
    """Who must approve a release: matched by risk level (or the emergency flag) and optionally a solution.

    The policy in force is read when approvals are counted, so a program manager's edit applies to releases
    already in review. Policies are never deleted; a replaced one is deactivated.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    risk_level = models.CharField(
        max_length=16, choices=RiskLevel.choices, blank=True, help_text="Blank only for an emergency policy (any risk)."
    )
    is_emergency = models.BooleanField(default=False, help_text="Applies to emergency releases (reduced policy).")
    solution = models.ForeignKey(
        "releases.AutomationSolution",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approval_policies",
        help_text="Leave empty for the default policy of the risk level.",
    )
    validity_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Approvals expire this many days after they were given.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = ApprovalPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["is_emergency", "risk_level", "name"]
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_emergency=True) | ~models.Q(risk_level=""),
                name="policy_risk_level_unless_emergency",
            ),
            models.UniqueConstraint(
                fields=["risk_level", "is_emergency"],
                condition=models.Q(is_active=True, solution__isnull=True),
                name="policy_one_active_default",
            ),
            models.UniqueConstraint(
                fields=["solution", "risk_level", "is_emergency"],
                condition=models.Q(is_active=True, solution__isnull=False),
                name="policy_one_active_per_solution",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ApprovalRequirement(models.Model):
    """``minimum_count`` distinct members of ``group`` must approve."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="requirements")
    group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="+")
    minimum_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])

    history = HistoricalRecords()

    class Meta:
        ordering = ["policy", "group__name"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "group"], name="requirement_unique_group_per_policy"),
            models.CheckConstraint(condition=models.Q(minimum_count__gte=1), name="requirement_minimum_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.group.name} ×{self.minimum_count}"


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    REQUEST_CHANGES = "request_changes", "Request changes"


class ApprovalQuerySet(models.QuerySet["Approval"]):
    def live(self) -> ApprovalQuerySet:
        return self.filter(dismissed_at__isnull=True)

    def valid_for(self, *, content_hash: str, now: datetime) -> ApprovalQuerySet:
        """Undismissed, unexpired approvals of exactly this content."""
        return self.live().filter(decision=ApprovalDecision.APPROVE, content_hash=content_hash, expires_at__gt=now)

    def with_related(self) -> ApprovalQuerySet:
        return self.select_related("release__solution", "approver", "group")


class Approval(models.Model):
    """One person's decision on one release, for one group, bound to the content they saw.

    Dismissed rows (content changed, changes requested, expired) are kept with ``dismissed_at`` and the reason.
    """

    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approvals")
    group = models.ForeignKey(
        "auth.Group", on_delete=models.PROTECT, related_name="+", help_text="The requirement this decision counts for."
    )
    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.PROTECT, related_name="approvals")
    decision = models.CharField(max_length=16, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField()
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismiss_reason = models.TextField(blank=True)

    history = HistoricalRecords()
    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One person counts once: at most one live decision per person and release, whatever the race.
            models.UniqueConstraint(
                fields=["release", "approver"],
                condition=models.Q(dismissed_at__isnull=True),
                name="approval_one_live_decision_per_person",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} as {self.group.name} on {self.release_id}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())


# --- SOP checklists ---------------------------------------------------------------------------------------------


class ChecklistGate(models.TextChoices):
    REVIEW = "review", "Review"
    ROLLOUT = "rollout", "Rollout"
    LAUNCH = "launch", "Launch"
    VERIFICATION = "verification", "Verification"
    RETRO_REVIEW = "retro_review", "Retro-review"


class TemplateStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ChecklistTemplateQuerySet(models.QuerySet["ChecklistTemplate"]):
    def active(self) -> ChecklistTemplateQuerySet:
        return self.filter(status=TemplateStatus.ACTIVE)

    def with_items(self) -> ChecklistTemplateQuerySet:
        return self.prefetch_related(
            models.Prefetch("items", queryset=ChecklistTemplateItem.objects.select_related("signer_group"))
        )


class ChecklistTemplate(models.Model):
    """One version of the SOP checklist for a gate and risk level.

    Versions are immutable once active: only a draft's items can be edited. Changing an active checklist means
    creating the next version (a draft copy), editing it and activating it, which retires the previous one.
    Checklists already instantiated keep their own copy of the items.
    """

    gate = models.CharField(max_length=16, choices=ChecklistGate.choices)
    risk_level = models.CharField(max_length=16, choices=RiskLevel.choices)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=TemplateStatus.choices, default=TemplateStatus.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()
    objects = ChecklistTemplateQuerySet.as_manager()

    class Meta:
        ordering = ["gate", "risk_level", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["gate", "risk_level", "version"], name="template_unique_version"),
            models.UniqueConstraint(
                fields=["gate", "risk_level"],
                condition=models.Q(status="active"),
                name="template_one_active_per_gate_and_risk",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_gate_display()}, {self.risk_level}, v{self.version})"

    @property
    def is_editable(self) -> bool:
        return self.status == TemplateStatus.DRAFT


class ChecklistTemplateItem(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField()
    question = models.CharField(max_length=300)
    guidance = models.TextField(blank=True)
    required = models.BooleanField(default=True)
    evidence_required = models.BooleanField(default=False, help_text="Sign-off needs an evidence URL.")
    signer_group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="+")

    history = HistoricalRecords()

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="template_item_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.question}"


class ChecklistStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    PASSED = "passed", "Passed (frozen)"
    SUPERSEDED = "superseded", "Superseded"


LIVE_CHECKLIST_STATUSES = (ChecklistStatus.OPEN, ChecklistStatus.COMPLETE)


class ChecklistQuerySet(models.QuerySet["Checklist"]):
    def current(self) -> ChecklistQuerySet:
        """Not superseded: the checklist that counts for its gate."""
        return self.exclude(status=ChecklistStatus.SUPERSEDED)

    def with_items(self) -> ChecklistQuerySet:
        return self.select_related("release__solution", "template").prefetch_related(
            models.Prefetch(
                "items", queryset=ChecklistItem.objects.select_related("signer_group", "signed_by").order_by("position")
            )
        )


class Checklist(models.Model):
    """The SOP checklist of one release at one gate: a snapshot of the template version active when the
    release entered the gate. Frozen (``passed``) once the gate's transition happened."""

    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="checklists")
    gate = models.CharField(max_length=16, choices=ChecklistGate.choices)
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.PROTECT, related_name="checklists")
    template_version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=ChecklistStatus.choices, default=ChecklistStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="Retro-reviews are owed by this time.")
    escalated_at = models.DateTimeField(null=True, blank=True)
    superseded_reason = models.TextField(blank=True)

    history = HistoricalRecords()
    objects = ChecklistQuerySet.as_manager()

    class Meta:
        ordering = ["release", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "gate"],
                condition=~models.Q(status="superseded"),
                name="checklist_one_current_per_gate",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_gate_display()} checklist of release {self.release_id}"

    @property
    def is_signable(self) -> bool:
        return self.status in LIVE_CHECKLIST_STATUSES


class ChecklistItemState(models.TextChoices):
    PENDING = "pending", "Pending"
    SIGNED = "signed", "Signed"
    NOT_APPLICABLE = "not_applicable", "N/A"


class ChecklistItem(models.Model):
    """A copy of a template item, and its sign-off."""

    checklist = models.ForeignKey(Checklist, on_delete=models.PROTECT, related_name="items")
    position = models.PositiveSmallIntegerField()
    question = models.CharField(max_length=300)
    guidance = models.TextField(blank=True)
    required = models.BooleanField(default=True)
    evidence_required = models.BooleanField(default=False)
    signer_group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=ChecklistItemState.choices, default=ChecklistItemState.PENDING)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="checklist_sign_offs"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    evidence_url = models.URLField(max_length=500, blank=True)
    note = models.TextField(blank=True)
    na_justification = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["checklist", "position"]
        constraints = [
            models.UniqueConstraint(fields=["checklist", "position"], name="checklist_item_unique_position"),
            models.CheckConstraint(
                condition=~models.Q(state="not_applicable", required=True), name="checklist_item_na_only_optional"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.question}"

    @property
    def is_resolved(self) -> bool:
        return self.state != ChecklistItemState.PENDING


# --- Freeze windows ---------------------------------------------------------------------------------------------


class FreezeWindowQuerySet(models.QuerySet["FreezeWindow"]):
    def in_force(self) -> FreezeWindowQuerySet:
        return self.filter(cancelled_at__isnull=True)

    def covering(self, now: datetime) -> FreezeWindowQuerySet:
        return self.in_force().filter(starts_at__lte=now, ends_at__gt=now)


class FreezeWindow(models.Model):
    """No rollout starts or promotes in these markets (all markets when empty) between start and end, unless a
    program manager overrides it for an emergency release."""

    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    markets = models.JSONField(
        default=list, blank=True, validators=[validate_market_codes], help_text="Empty means every market."
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()
    objects = FreezeWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def applies_to(self, markets: list[str]) -> bool:
        return not self.markets or bool(set(self.markets) & set(markets))


# --- Admin work queues ------------------------------------------------------------------------------------------


class AwaitingMyApproval(Release):
    """Admin work queue: releases in review where the logged-in user's approval would still count."""

    class Meta:
        proxy = True
        verbose_name = "release awaiting my approval"
        verbose_name_plural = "awaiting my approval"


class AwaitingMySignOff(ChecklistItem):
    """Admin work queue: checklist items the logged-in user may sign now."""

    class Meta:
        proxy = True
        verbose_name = "checklist item awaiting my sign-off"
        verbose_name_plural = "awaiting my sign-off"
