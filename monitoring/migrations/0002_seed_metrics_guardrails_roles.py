"""Seed the metric definitions and the default guardrails per risk level; grant the roles monitoring's permissions."""

from datetime import timedelta

from django.db import migrations

from core.roles import sync_role_groups

METRICS = [
    # key, name, kind, direction, numerator, denominator, unit, maturation
    ("csat", "CSAT", "rate", "higher", "conversations whose last rating is 4 or 5 (1-5 scale)",
     "conversations with a rating", "", timedelta(hours=24)),
    ("containment_rate", "Containment rate", "rate", "higher",
     "eligible conversations with no handoff and not abandoned before an answer",
     "eligible conversations started in the window (E)", "", timedelta(hours=24)),
    ("resolution_rate", "Resolution rate", "rate", "higher",
     "no handoff, a substantive answer, confirmed helpful or no further help request within 24 h",
     "eligible conversations started in the window (E)", "", timedelta(hours=24)),
    ("escalation_rate", "Escalation rate", "rate", "lower",
     "conversations handed to a human (ticket, transfer, or the customer asked for one)",
     "eligible conversations started in the window (E)", "", timedelta(hours=2)),
    ("fallback_rate", "Fallback rate", "rate", "lower",
     "conversations with at least one fallback (can't help, refusal, guardrail block, empty retrieval)",
     "eligible conversations started in the window (E)", "", timedelta(0)),
    ("error_rate", "Error rate", "rate", "lower",
     "bot turns with a technical error (LLM timeout, 5xx, tool error)", "bot turns", "", timedelta(0)),
    ("latency_p95_ms", "Latency p95", "gauge", "lower", "95th percentile of bot turn latency", "", "ms",
     timedelta(0)),
]

# risk level -> [(metric, absolute, relative, min sample, severity, action)]
DEFAULTS = {
    "low": [
        ("error_rate", 0.05, None, 500, "sev3", "incident"),
        ("escalation_rate", None, 0.05, 500, "sev4", "incident"),
    ],
    "medium": [
        ("error_rate", 0.03, None, 500, "sev2", "pause"),
        ("escalation_rate", None, 0.03, 800, "sev3", "incident"),
        ("csat", None, 0.05, 800, "sev3", "incident"),
    ],
    "high": [
        ("error_rate", 0.02, None, 500, "sev2", "pause"),
        ("escalation_rate", None, 0.02, 1000, "sev2", "pause"),
        ("csat", None, 0.03, 1000, "sev2", "incident"),
        ("containment_rate", None, 0.03, 1000, "sev3", "incident"),
        ("fallback_rate", 0.08, None, 1000, "sev3", "incident"),
    ],
    "critical": [
        ("error_rate", 0.01, None, 500, "sev1", "rollback"),
        ("escalation_rate", None, 0.02, 1000, "sev1", "rollback"),
        ("csat", None, 0.03, 1000, "sev2", "pause"),
        ("containment_rate", None, 0.03, 1000, "sev2", "pause"),
        ("fallback_rate", 0.08, None, 1000, "sev2", "pause"),
    ],
}


def seed(apps, schema_editor):
    MetricDefinition = apps.get_model("monitoring", "MetricDefinition")
    Guardrail = apps.get_model("monitoring", "Guardrail")
    metrics = {}
    for key, name, kind, direction, numerator, denominator, unit, maturation in METRICS:
        metrics[key], _ = MetricDefinition.objects.get_or_create(
            key=key,
            defaults={
                "name": name,
                "kind": kind,
                "direction": direction,
                "numerator_definition": numerator,
                "denominator_definition": denominator,
                "unit": unit,
                "version": 1,
                "maturation_period": maturation,
            },
        )
    for risk_level, rows in DEFAULTS.items():
        for metric_key, absolute, relative, min_sample, severity, action in rows:
            kind = "absolute" if absolute is not None else "relative"
            Guardrail.objects.get_or_create(
                scope="risk_level",
                risk_level=risk_level,
                metric=metrics[metric_key],
                defaults={
                    "name": f"{risk_level} default: {metric_key} ({kind})",
                    "absolute_threshold": absolute,
                    "relative_margin": relative,
                    "min_sample_size": min_sample,
                    "severity": severity,
                    "action": action,
                },
            )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
        migrations.RunPython(sync_role_groups, migrations.RunPython.noop),
    ]
