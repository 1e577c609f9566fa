from django.db import migrations


class Migration(migrations.Migration):
    """The audit log now belongs to ``core`` (same table); governance forgets its model."""

    dependencies = [
        ("governance", "0005_seed_policies_templates_roles"),
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="AuditEvent")]),
    ]
