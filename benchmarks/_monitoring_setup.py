"""Shared setup of the monitoring benchmarks: a throwaway PostgreSQL database next to ``DATABASE_URL``'s."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dj_database_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def bench_database(suffix: str) -> Iterator[None]:
    """Create ``<name>_<suffix>``, point Django at it, migrate; drop it afterwards."""
    import psycopg

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollgate")
    config = dj_database_url.parse(url)
    name = f"{config['NAME']}_{suffix}"
    admin_dsn = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    try:
        yield
    finally:
        connections.close_all()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
            current_stage_id=release.ordered_stages[0].pk,
            stage_started_at=timezone.now(),
        )
    return list(Release.objects.filter(pk__in=[r.pk for r in releases]).order_by("id"))
