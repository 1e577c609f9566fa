"""The ground floor's one model: the append-only, hash-chained audit log every app writes to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def for_release(self, release_id: int) -> AuditEventQuerySet:
        return self.filter(release_id=release_id)


class AuditEvent(models.Model):
    """One line of the append-only audit log, chained: ``hash = sha256(prev_hash + canonical event)``.

    Rows are written only by ``core.audit.audit_record``; on PostgreSQL a trigger refuses UPDATE and
    DELETE, and ``manage.py audit_verify`` walks the chain to find the first broken link.
    """

    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Kept as text too, so the event reads the same after a user is renamed; "system" for Celery.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64)
    # The release the event belongs to, by id: the ground floor knows no release model. Releases are never
    # deleted, so the id always resolves.
    release_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        # The table keeps the name it was created with, before the log moved to the ground floor.
        db_table = "governance_auditevent"
        ordering = ["id"]
        permissions = [("export_evidence", "Can export audit evidence")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id} by {self.actor_label}"


class ApiToken(models.Model):
    """An API token that expires, can be revoked, and dies with a password change.

    Only a SHA-256 of the key is stored: the key is shown once, when issued, and a database reader cannot
    replay it. ``password_fingerprint`` ties the token to the password it was issued under, so changing the
    password (by any path: admin, shell, ``changepassword``) revokes every token without a signal to miss.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the key, to tell tokens apart in logs and the audit log without revealing them.
    key_prefix = models.CharField(max_length=8)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)
    password_fingerprint = models.CharField(max_length=64)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "revoked_at"], name="core_apitoken_user_live")]

    def __str__(self) -> str:
        return f"token {self.key_prefix}… of user #{self.user_id}"


class AuditCheckpoint(models.Model):
    """A signed note of the audit chain's head at one moment: the last event's id and hash, and how many events
    the chain held. Signed with ``AUDIT_CHECKPOINT_KEY`` (kept outside the database) and also written to the
    log, so deleting the newest events, truncating the table or rewriting the chain is detected by
    ``audit_verify``. Append-only like the log (a trigger refuses UPDATE, DELETE and TRUNCATE)."""

    created_at = models.DateTimeField()
    last_event_id = models.BigIntegerField()
    last_hash = models.CharField(max_length=64)
    event_count = models.BigIntegerField()
    signature = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"checkpoint #{self.pk} at event #{self.last_event_id}"


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key`` header, so a retry gets it back instead of
    acting twice. Scoped by user: two people may use the same key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # What the key was first used for: a retry must send the same request, not reuse the key for another one.
    request_fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # Empty until the first request finished; a concurrent retry meanwhile gets 409.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
