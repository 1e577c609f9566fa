"""Grant the roles the opportunities permissions: Program managers own the backlog, everyone views, Program
managers and On-call may send contact-reason data (core.roles); create the scoring weights."""

from django.db import migrations

from core.roles import sync_role_groups


def create_weights(apps, schema_editor):
    # The one row of scoring weights (plain RICE) the program managers tune.
    apps.get_model("opportunities", "ScoringWeights").objects.get_or_create(pk=1)


def noop(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("opportunities", "0001_initial"),
        ("monitoring", "0003_bounds_and_dead_letters"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_role_groups, noop), migrations.RunPython(create_weights, noop)]
