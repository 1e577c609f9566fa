from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # Registers approval, checklist and freeze-window guards and effects in releases.hooks.
        from . import lifecycle  # noqa: F401
