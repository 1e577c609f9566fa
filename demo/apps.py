from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The top floor: demo data that tells a story across every app (releases, governance, monitoring,
    opportunities). Nothing imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
