"""The audit log refuses TRUNCATE (the row trigger never fires for it), and the checkpoint table is append-only
like the log. PostgreSQL only: the embedded SQLite default is for trying Rollgate out.

``manage.py flush`` (which the test suite uses between transactional tests) wipes every table on purpose; it sets
``rollgate.allow_audit_truncate`` for its own session (core/management/commands/flush.py).
"""

from django.db import migrations

GUARD_SQL = """
CREATE OR REPLACE FUNCTION rollgate_audit_forbid_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('rollgate.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER governance_auditevent_no_truncate
    BEFORE TRUNCATE ON governance_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_audit_forbid_truncate();

CREATE OR REPLACE FUNCTION core_auditcheckpoint_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'core_auditcheckpoint is append-only: % refused on checkpoint %', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER core_auditcheckpoint_append_only
    BEFORE UPDATE OR DELETE ON core_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION core_auditcheckpoint_forbid_change();

CREATE TRIGGER core_auditcheckpoint_no_truncate
    BEFORE TRUNCATE ON core_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_audit_forbid_truncate();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS core_auditcheckpoint_no_truncate ON core_auditcheckpoint;
DROP TRIGGER IF EXISTS core_auditcheckpoint_append_only ON core_auditcheckpoint;
DROP FUNCTION IF EXISTS core_auditcheckpoint_forbid_change();
DROP TRIGGER IF EXISTS governance_auditevent_no_truncate ON governance_auditevent;
DROP FUNCTION IF EXISTS rollgate_audit_forbid_truncate();
"""


def guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD_SQL, params=None)


def unguard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_audit_checkpoint")]

    operations = [migrations.RunPython(guard, unguard)]
