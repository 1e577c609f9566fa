from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from core.metrics import register_scrape_time_collector
        from releases import hooks

        from . import lifecycle
        from .metrics import MonitoringStateCollector

        # The table in monitoring/lifecycle.py is the one list of monitoring's guards and effects.
        hooks.register_lifecycle(lifecycle)
        # Open incidents and the notification outbox, read from the database when /metrics is scraped.
        register_scrape_time_collector(MonitoringStateCollector())
