from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from releases import hooks

        from . import lifecycle

        # Approval, checklist and freeze-window guards and effects, declared in governance/lifecycle.py.
        hooks.register_lifecycle(lifecycle)
