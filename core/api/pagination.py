"""Page sizes are capped: ``?limit=1000000`` would otherwise serialize a whole table in one response."""

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class CappedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # type: ignore[override]
        # Read per request so tests and deployments can change the cap through settings.
        return int(settings.API_MAX_PAGE_SIZE)
