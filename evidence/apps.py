from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    """The auditors' evidence pack: the top floor, since it reads releases, governance and monitoring."""

    name = "evidence"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from releases.admin import register_release_panel

        from .admin import evidence_release_panel

        register_release_panel(evidence_release_panel)
