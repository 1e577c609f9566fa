"""Seed the approval policies and SOP checklist templates of ``governance.seed_content`` and grant the role
groups their governance permissions, so a fresh install is governed from the first release."""

from django.db import migrations
from django.utils import timezone

from core.roles import sync_role_groups
from governance.seed_content import APPROVAL_POLICIES, CHECKLIST_GATES, RISK_LEVELS, items_for_risk


def seed(apps, schema_editor):
    sync_role_groups(apps, schema_editor)
    group_model = apps.get_model("auth", "Group")
    policy_model = apps.get_model("governance", "ApprovalPolicy")
    requirement_model = apps.get_model("governance", "ApprovalRequirement")
    template_model = apps.get_model("governance", "ChecklistTemplate")
    item_model = apps.get_model("governance", "ChecklistTemplateItem")
    groups = {group.name: group for group in group_model.objects.all()}
    now = timezone.now()

    for seed_policy in APPROVAL_POLICIES:
        if policy_model.objects.filter(
            risk_level=seed_policy.risk_level, is_emergency=seed_policy.is_emergency, solution__isnull=True
        ).exists():
            continue
        policy = policy_model.objects.create(
            name=seed_policy.name,
            description=seed_policy.description,
            risk_level=seed_policy.risk_level,
            is_emergency=seed_policy.is_emergency,
            validity_days=seed_policy.validity_days,
            is_active=True,
        )
        for requirement in seed_policy.requirements:
            requirement_model.objects.create(
                policy=policy, group=groups[requirement.group], minimum_count=requirement.minimum_count
            )

    for gate in CHECKLIST_GATES:
        for risk_level in RISK_LEVELS:
            if template_model.objects.filter(gate=gate.gate, risk_level=risk_level).exists():
                continue
            template = template_model.objects.create(
                gate=gate.gate,
                risk_level=risk_level,
                version=1,
                name=f"{gate.name} ({risk_level} risk)",
                description=gate.description,
                status="active",
                activated_at=now,
            )
            for position, item in enumerate(items_for_risk(gate, risk_level), start=1):
                item_model.objects.create(
                    template=template,
                    position=position,
                    question=item.question,
                    guidance=item.guidance,
                    required=item.required,
                    evidence_required=item.evidence_required,
                    signer_group=groups[item.signer_group],
                )


def unseed(apps, schema_editor):
    # Seeded rows may be referenced by approvals and checklists by now; leaving them is the safe reverse.
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0004_approvals_checklists_freeze_windows"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
