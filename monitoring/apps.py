from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from releases import hooks

        from .services.rollout import guardrails_guard

        # Guardrails must pass before a stage is promoted or verification completes (unless overridden).
        hooks.register_guard("promote", "complete_verification")(guardrails_guard)
