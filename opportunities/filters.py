from __future__ import annotations

from django_filters import rest_framework as filters

from .choices import OpportunityStatus
from .models import ContactReasonVolume, Opportunity


class ContactReasonVolumeFilter(filters.FilterSet):
    solution = filters.CharFilter(field_name="served_by")
    window_start_after = filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="gte")
    window_start_before = filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="lt")

    class Meta:
        model = ContactReasonVolume
        fields = ["contact_reason", "market", "audience", "arm", "source"]


class OpportunityFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=OpportunityStatus.choices)
    contact_reason = filters.CharFilter(field_name="contact_reasons", lookup_expr="contains", method="by_reason")

    class Meta:
        model = Opportunity
        fields = ["status", "solution", "owner", "audience"]

    def by_reason(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.filter(contact_reasons__contains=[value])
