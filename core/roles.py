"""The five roles of Rollgate and the Django permissions each one holds.

Data migrations call ``sync_role_groups`` so every fresh database has the groups; each app that adds models adds
a migration that calls it again. Separation of duties is not here: it is a domain rule checked in services.
"""

from __future__ import annotations

from typing import Any

AUTHORS = "Authors"
PROGRAM_MANAGERS = "Program managers"
REVIEWERS = "Reviewers"
ON_CALL = "On-call"
AUDITORS = "Auditors"
ALL_ROLES = (AUTHORS, PROGRAM_MANAGERS, REVIEWERS, ON_CALL, AUDITORS)

# Read access that every role has: the whole release picture.
_READ_ALL = [
    "releases.view_automationsolution",
    "releases.view_release",
    "releases.view_rolloutstage",
    "core.view_auditevent",
    # Governance (issue 3): everyone sees policies, approvals, checklists and freeze windows.
    "governance.view_approvalpolicy",
    "governance.view_approvalrequirement",
    "governance.view_approval",
    "governance.view_checklisttemplate",
    "governance.view_checklisttemplateitem",
    "governance.view_checklist",
    "governance.view_checklistitem",
    "governance.view_freezewindow",
    # Monitoring (issue 4): everyone sees metrics, guardrails, evaluations and incidents.
    "monitoring.view_metricdefinition",
    "monitoring.view_metricsample",
    "monitoring.view_guardrail",
    "monitoring.view_evaluation",
    "monitoring.view_incident",
    "monitoring.view_incidentevent",
    # Opportunities (issue 12): everyone sees the contact-reason data, the gap analysis and the backlog.
    "opportunities.view_contactreasonvolume",
    "opportunities.view_gapanalysis",
    "opportunities.view_opportunity",
    "opportunities.view_scoringweights",
]

# Program managers own the opportunity backlog (propose, edit, move it along, tune the scoring weights).
_OPPORTUNITY_OWNER = [
    "opportunities.add_opportunity",
    "opportunities.change_opportunity",
    "opportunities.change_scoringweights",
]
# Program managers and on-call may send contact-reason data.
_CONTACT_REASON_INGEST = ["opportunities.add_contactreasonvolume"]

# Program managers own the guardrails and where incidents are announced; they and on-call may push samples.
_MONITORING_OWNER = [
    "monitoring.add_guardrail",
    "monitoring.change_guardrail",
    "monitoring.add_metricsample",
    "monitoring.view_notificationendpoint",
    "monitoring.add_notificationendpoint",
    "monitoring.change_notificationendpoint",
]
# On-call triages incidents (acknowledge, assign, comment, mitigate, resolve).
_INCIDENT_TRIAGE = ["monitoring.triage_incident", "monitoring.add_metricsample"]

# Program managers own the governance configuration. Nobody may delete: governed rows are deactivated,
# retired or cancelled instead.
_GOVERNANCE_OWNER = [
    "governance.add_approvalpolicy",
    "governance.change_approvalpolicy",
    "governance.add_approvalrequirement",
    "governance.change_approvalrequirement",
    "governance.add_checklisttemplate",
    "governance.change_checklisttemplate",
    "governance.add_checklisttemplateitem",
    "governance.change_checklisttemplateitem",
    "governance.add_freezewindow",
    "governance.change_freezewindow",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    AUTHORS: [
        *_READ_ALL,
        "releases.add_automationsolution",
        "releases.change_automationsolution",
        "releases.add_release",
        "releases.change_release",
        "releases.submit_release",
    ],
    PROGRAM_MANAGERS: [
        *_READ_ALL,
        "releases.add_automationsolution",
        "releases.change_automationsolution",
        "releases.review_release",
        "releases.approve_release",
        "releases.manage_rollout",
        "releases.emergency_stop",
        *_GOVERNANCE_OWNER,
        *_MONITORING_OWNER,
        *_OPPORTUNITY_OWNER,
        *_CONTACT_REASON_INGEST,
    ],
    # Reviewers and on-call approve too (reviewers for their domain; on-call for emergency releases): the
    # approval policy says whose approvals count, and whichever approval or sign-off completes it approves.
    REVIEWERS: [*_READ_ALL, "releases.review_release", "releases.approve_release"],
    ON_CALL: [
        *_READ_ALL,
        "releases.emergency_stop",
        "releases.approve_release",
        *_INCIDENT_TRIAGE,
        *_CONTACT_REASON_INGEST,
    ],
    AUDITORS: [*_READ_ALL, "core.export_evidence", "monitoring.view_notificationendpoint"],
}


def sync_role_groups(apps: Any, schema_editor: Any = None) -> None:
    """Create the role groups and grant them ROLE_PERMISSIONS (idempotent; usable from migrations)."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; create them now so the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    wanted = {tuple(name.split(".", 1)) for names in ROLE_PERMISSIONS.values() for name in names}
    # One read of every permission named here; a permission of a model a later migration adds is missing now and
    # granted by that migration's own sync.
    existing = {
        (app_label, codename): pk
        for pk, app_label, codename in permission_model.objects.filter(
            codename__in={codename for _, codename in wanted}
        ).values_list("pk", "content_type__app_label", "codename")
    }
    for role, perm_names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        granted = [existing[key] for key in (tuple(name.split(".", 1)) for name in perm_names) if key in existing]
        group.permissions.add(*granted)
