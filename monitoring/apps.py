from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from releases import hooks

        from . import lifecycle

        # The table in monitoring/lifecycle.py is the one list of monitoring's guards and effects.
        hooks.register_lifecycle(lifecycle)
