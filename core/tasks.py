from celery import shared_task

from core.audit import audit_checkpoint


@shared_task(name="core.audit_checkpoint")
def audit_checkpoint_task() -> int | None:
    """Periodic (beat, every 5 minutes): sign the audit chain's head so deleting the newest events is detected."""
    checkpoint = audit_checkpoint()
    return checkpoint.pk if checkpoint is not None else None
