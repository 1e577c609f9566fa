"""Shared setup of the monitoring benchmarks: a throwaway PostgreSQL database next to ``DATABASE_URL``'s."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dj_database_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def bench_database(suffix: str) -> Iterator[None]:
    """Create ``<name>_<suffix>``, point Django at it, migrate; drop it afterwards.

    With ``BENCH_TEMPLATE_DATABASE`` (an already migrated database nobody is connected to), the database is a copy
    of it instead, and nothing is migrated: the smoke tests run five benchmarks, and migrating costs more than
    any of them at their tiny scale."""
    import psycopg
    from psycopg import sql

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollgate")
    config = dj_database_url.parse(url)
    name = f"{config['NAME']}_{suffix}"
    admin_dsn = url.rsplit("/", 1)[0] + "/postgres"
    template = os.environ.get("BENCH_TEMPLATE_DATABASE")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(create)
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    if not template:
        call_command("migrate", verbosity=0)
    try:
        yield
    finally:
        connections.close_all()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def make_live_releases(count: int, markets: tuple[str, ...] = ("US", "DE", "FR")) -> list:
    """Releases created through the real services, then placed in ``rolling_out`` directly as fixture data."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from releases import services
    from releases.choices import Audience, ReleaseStatus
    from releases.models import Release
    from releases.services import StageSpec

    author, _ = User.objects.get_or_create(username="bench.author")
    author.groups.add(Group.objects.get(name="Authors"))
    author = User.objects.get(pk=author.pk)  # fresh permission cache
    solution = services.solution_create(
        actor=author, key=f"bench-{timezone.now():%H%M%S%f}", name="Bench", audience=Audience.BUYERS
    )
    releases = [
        services.release_create(
            actor=author,
            solution=solution,
            stages=(StageSpec(name="All", traffic_percent=100),),
            title=f"bench {index}",
            system_prompt="bench",
            model_name="bench-model",
            markets=list(markets),
        )
        for index in range(count)
    ]
    for release in releases:
        Release.objects.filter(pk=release.pk).update(
            status=ReleaseStatus.ROLLING_OUT,
            current_stage_id=next(iter(release.ordered_stages)).pk,
            stage_started_at=timezone.now(),
        )
    return list(Release.objects.filter(pk__in=[r.pk for r in releases]).order_by("id"))


# --- Bench-only bulk fixtures ---------------------------------------------------------------------------------
# ``make_live_releases`` goes through the services (validation, audit, history) and takes minutes for 10,000
# releases. The builder below writes the same shape of rows straight into the tables with set-based INSERT …
# SELECT over generate_series, skipping every service check: it exists only to give the benchmarks data at scale
# and must never be used by the application or its tests of behaviour.

# Six guardrails per release: (metric key, absolute threshold, relative margin, minimum sample — windows for the
# gauge). Thresholds sit well above the generated rates, so a clean fleet passes. The windows end more than a day
# ago, so every metric (CSAT and containment mature after a day) has matured.
FLEET_GUARDRAILS = (
    ("error_rate", 0.08, None, 100),
    ("fallback_rate", 0.2, None, 100),
    ("escalation_rate", 0.5, 0.2, 100),
    ("containment_rate", None, 0.2, 100),
    ("slow_turn_rate", 0.5, None, 100),
    ("latency_p95_ms", 5000.0, None, 2),
)
FLEET_MARKETS = ("US", "DE", "FR")
FLEET_WINDOWS = 3  # hourly windows per (release, metric, market, arm): 6 × 3 × 2 × 3 = 108 samples a release


def bulk_live_fleet(
    count: int,
    *,
    audit_events: int = 0,
    failing_every: int = 0,
    windows: int = FLEET_WINDOWS,
    markets: tuple[str, ...] = FLEET_MARKETS,
    guardrails: bool = True,
) -> dict[str, int]:
    """``count`` rolling-out releases (one solution each, one 100% stage, the risk-level defaults removed), six
    release guardrails each, ``windows`` hourly samples per (metric, market, arm) ending a day ago, and
    ``audit_events`` audit rows spread over the releases. Every ``failing_every``-th release breaches its error
    rate (0: none). Returns the row counts written."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    author, _ = User.objects.get_or_create(username="bench.author", defaults={"is_staff": True})
    author.groups.add(Group.objects.get(name="Authors"))
    tag = f"fleet-{uuid.uuid4().hex[:8]}"  # this call's solutions, so the statements below see only its rows
    counts: dict[str, int] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_guardrail WHERE scope = 'risk_level'")
        cursor.execute(
            "INSERT INTO releases_automationsolution (key, name, description, audience, is_active, created_at,"
            " updated_at, owner_id) SELECT %s || '-' || i, 'Bench solution ' || i, '', 'buyers', true, now(), now(), %s"
            " FROM generate_series(1, %s) AS i",
            [tag, author.pk, count],
        )
        counts["solutions"] = cursor.rowcount
        cursor.execute(
            "INSERT INTO releases_release (version, title, change_summary, risk_level, is_emergency, system_prompt,"
            " resolution_flow, model_name, model_parameters, tools, knowledge_base_version, markets, content_hash,"
            " status, stage_started_at, auto_promote, verification_window, created_at, updated_at, submitted_at,"
            " approved_at, rollout_started_at, author_id, last_editor_id, solution_id)"
            " SELECT 1, 'bench release ' || s.id, '', 'medium', false, 'bench', '{}'::jsonb, 'bench-model',"
            " '{}'::jsonb, '[]'::jsonb, '', %s::jsonb, md5(s.key), 'rolling_out', now() - interval '30 hours',"
            " false, interval '7 days', now() - interval '1 day', now(), now() - interval '1 day',"
            " now() - interval '1 day', now() - interval '30 hours', %s, %s, s.id"
            " FROM releases_automationsolution AS s WHERE s.key LIKE %s ORDER BY s.id",
            [json.dumps(list(markets)), author.pk, author.pk, f"{tag}-%"],
        )
        counts["releases"] = cursor.rowcount
        fleet = "SELECT r.id FROM releases_release AS r JOIN releases_automationsolution AS s ON s.id = r.solution_id"
        fleet += " WHERE s.key LIKE %s"
        cursor.execute(
            "INSERT INTO releases_rolloutstage (position, name, traffic_percent, markets, min_hold, min_sample_size,"
            f" started_at, release_id) SELECT 0, 'All', 100, '[]'::jsonb, interval '1 hour', 0,"
            f" now() - interval '30 hours', f.id FROM ({fleet}) AS f",
            [f"{tag}-%"],
        )
        cursor.execute(
            "UPDATE releases_release AS r SET current_stage_id = st.id FROM releases_rolloutstage AS st"
            f" WHERE st.release_id = r.id AND r.id IN ({fleet})",
            [f"{tag}-%"],
        )
        for key, threshold, margin, minimum in FLEET_GUARDRAILS if guardrails else ():
            cursor.execute(
                "INSERT INTO monitoring_guardrail (name, scope, risk_level, absolute_threshold, relative_margin,"
                " min_sample_size, evaluation_window, evaluation_interval, confidence, failure_limit,"
                " consecutive_success_limit, severity, action, dry_run, is_active, created_at, updated_at,"
                " release_id, metric_id, bonferroni, planned_treatment_share)"
                " SELECT %s, 'release', '', %s, %s, %s, interval '1 day', interval '5 minutes', 0.95, 0, 3,"
                " 'sev2', 'notify', false, true, now(), now(), f.id, m.id, true, NULL"
                f" FROM ({fleet}) AS f CROSS JOIN monitoring_metricdefinition AS m WHERE m.key = %s",
                [f"{key} bench cap", threshold, margin, minimum, f"{tag}-%", key],
            )
            counts["guardrails"] = counts.get("guardrails", 0) + cursor.rowcount
        # Rates a few percent (containment near 60%); per-unit sums for turn-level metrics so the delta method
        # runs; the gauge carries a value. Every ``failing_every``-th release's error rate is 30%.
        cursor.execute(
            "INSERT INTO monitoring_metricsample (source, metric_version, market, arm, window_start, window_end,"
            " numerator, denominator, value, received_at, metric_id, release_id, units, sum_x, sum_y, sum_xx,"
            " sum_yy, sum_xy)"
            " SELECT 'api', m.version, mk.market, arm.arm, w.start, w.start + interval '1 hour',"
            "  CASE WHEN m.kind = 'gauge' THEN NULL"
            "   WHEN m.key = 'error_rate' AND %s > 0 AND f.id %% %s = 0 AND arm.arm = 'treatment' THEN 300"
            "   WHEN m.key = 'containment_rate' THEN 600 + (f.id + w.n) %% 20"
            "   ELSE 20 + (f.id + w.n) %% 10 END,"
            "  CASE WHEN m.kind = 'gauge' THEN NULL ELSE 1000 END,"
            "  CASE WHEN m.kind = 'gauge' THEN 1200 + (f.id %% 100) ELSE NULL END,"
            "  now() - interval '25 hours', m.id, f.id,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 250 END,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 25.0 END,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 1000.0 END,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 40.0 END,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 4400.0 END,"
            "  CASE WHEN m.unit_of_analysis = 'turn' AND m.kind = 'rate' THEN 110.0 END"
            f" FROM ({fleet}) AS f"
            " CROSS JOIN monitoring_metricdefinition AS m"
            " CROSS JOIN (SELECT unnest(%s::text[]) AS market) AS mk"
            " CROSS JOIN (SELECT unnest(ARRAY['treatment', 'control']) AS arm) AS arm"
            " CROSS JOIN (SELECT n, date_trunc('hour', now()) - interval '26 hours' - n * interval '1 hour' AS start"
            "             FROM generate_series(1, %s) AS n) AS w"
            " WHERE m.key = ANY(%s)",
            [failing_every, failing_every or 1, f"{tag}-%", list(markets), windows,
             [key for key, *_rule in FLEET_GUARDRAILS]],
        )  # fmt: skip
        counts["samples"] = cursor.rowcount
        if audit_events:
            # The chain is not meant to verify (its hashes are placeholders): bench rows, never evidence.
            cursor.execute(
                "INSERT INTO governance_auditevent (created_at, actor_label, action, object_type, object_id,"
                " from_state, to_state, reason, data, prev_hash, hash, actor_id, release_id)"
                " SELECT now() - (%s - i) * interval '1 second', 'bench.author', 'release.transition', 'release',"
                "  f.id::text, 'approved', 'rolling_out', 'bench', '{}'::jsonb,"
                "  md5(%s || (i - 1)) || md5('p' || (i - 1)), md5(%s || i) || md5('p' || i), %s, f.id"
                " FROM generate_series(1, %s) AS i"
                f" JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM ({fleet}) AS ff) AS f"
                "  ON f.k = i %% %s",
                [audit_events, tag, tag, author.pk, audit_events, f"{tag}-%", count],
            )
            counts["audit_events"] = cursor.rowcount
    with connection.cursor() as cursor:
        for table in ("monitoring_metricsample", "releases_release", "monitoring_guardrail", "governance_auditevent"):
            cursor.execute(f"ANALYZE {table}")
    return counts


def bulk_live_release_ids(count: int, markets: tuple[str, ...]) -> list[int]:
    """``count`` rolling-out releases in ``markets`` with no guardrail and no sample (``bulk_live_fleet``): load for
    ingestion and the API, whose samples then cost ingestion alone, not an evaluation each."""
    from releases.models import Release

    before = set(Release.objects.values_list("pk", flat=True))
    bulk_live_fleet(count, windows=0, markets=markets, guardrails=False)
    return sorted(set(Release.objects.values_list("pk", flat=True)) - before)
