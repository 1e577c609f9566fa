from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases"

    def ready(self) -> None:
        from . import hooks, lifecycle

        # Releases' own guards register first, so they run before those of governance and monitoring.
        hooks.register_lifecycle(lifecycle)
