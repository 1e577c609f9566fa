from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from releases import hooks

        from . import lifecycle

        # The table in monitoring/lifecycle.py is the one list of monitoring's guards and effects.
        # (releases.hooks.register_lifecycle, on its way from branch rg, will replace this loop.)
        for event, guards in lifecycle.GUARDS.items():
            for guard in guards:
                hooks.register_guard(event)(guard)
        for event, effects in lifecycle.EFFECTS.items():
            for effect in effects:
                hooks.register_effect(event)(effect)
