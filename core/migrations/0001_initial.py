"""The audit log moves from governance to the ground floor. The table keeps its name, rows and append-only
trigger; only Django's picture of it moves (and ``release`` becomes a plain id: the ground floor knows no
release model, and releases are never deleted)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.roles import sync_role_groups


def drop_release_foreign_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite's embedded default keeps the old constraint; it only ever points at kept releases.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT con.conname FROM pg_constraint con
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey)
            WHERE con.conrelid = 'governance_auditevent'::regclass AND con.contype = 'f' AND att.attname = 'release_id'
            """
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE governance_auditevent DROP CONSTRAINT "{name}"')


def move_content_type(apps, schema_editor):
    # Permissions (view_auditevent, export_evidence) and the groups holding them follow the content type.
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="governance", model="auditevent").update(app_label="core")


def move_content_type_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    content_type.objects.filter(app_label="core", model="auditevent").update(app_label="governance")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("governance", "0005_seed_policies_templates_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("created_at", models.DateTimeField(db_index=True)),
                        ("actor_label", models.CharField(max_length=150)),
                        ("action", models.CharField(db_index=True, max_length=80)),
                        ("object_type", models.CharField(max_length=80)),
                        ("object_id", models.CharField(max_length=64)),
                        ("release_id", models.BigIntegerField(blank=True, db_index=True, null=True)),
                        ("from_state", models.CharField(blank=True, max_length=32)),
                        ("to_state", models.CharField(blank=True, max_length=32)),
                        ("reason", models.TextField(blank=True)),
                        ("data", models.JSONField(blank=True, default=dict)),
                        ("prev_hash", models.CharField(max_length=64)),
                        ("hash", models.CharField(max_length=64, unique=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "governance_auditevent",
                        "ordering": ["id"],
                        "permissions": [("export_evidence", "Can export audit evidence")],
                    },
                ),
            ],
            database_operations=[migrations.RunPython(drop_release_foreign_key, migrations.RunPython.noop)],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
        migrations.RunPython(sync_role_groups, migrations.RunPython.noop),
    ]
