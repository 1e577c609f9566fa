from django.db import migrations

from core.roles import sync_role_groups


def remove_nothing(apps, schema_editor):
    # Groups may hold users by now; leaving them is the safe reverse.
    pass


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0002_audit_append_only_trigger"),
        ("releases", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_role_groups, remove_nothing)]
