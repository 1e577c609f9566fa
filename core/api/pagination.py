"""Page sizes are capped: ``?limit=1000000`` would otherwise serialize a whole table in one response."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet, Window
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# The key under which each row of ``paginate_counted`` carries the count of the whole queryset.
_TOTAL = "_page_total"


class CappedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # type: ignore[override]
        # Read per request so tests and deployments can change the cap through settings.
        return int(settings.API_MAX_PAGE_SIZE)

    def paginate_counted(
        self, queryset: QuerySet[Any, dict[str, Any]], request: Request
    ) -> list[dict[str, Any]] | None:
        """``paginate_queryset`` for a ``values()`` queryset in one statement instead of two: each row of the page
        carries ``COUNT(*) OVER ()``, the count of the whole filtered queryset, so the separate count query goes.

        Only an offset past the last row (no row to carry it) and a ``DISTINCT`` queryset (the window would
        count the rows before they are made distinct) are counted apart, as ``paginate_queryset`` does."""
        if queryset.query.distinct:
            return self.paginate_queryset(queryset, request)
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        counted = queryset.annotate(**{_TOTAL: Window(Count("*"))})
        rows = list(counted[self.offset : self.offset + self.limit])
        self.count = rows[0][_TOTAL] if rows else self.get_count(queryset)
        for row in rows:
            del row[_TOTAL]
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows
