from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The ground floor: what every app shares (domain errors, actors, service steps, canonical JSON, the
    audit log, the roles) and nothing domain-specific. It imports no other Rollgate app."""

    name = "core"
    verbose_name = "Audit"

    def ready(self) -> None:
        from . import lookups  # noqa: F401 (registers ``__any`` on every field)
