from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets

from core.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    release = serializers.IntegerField(source="release_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "release",
            "from_state",
            "to_state",
            "reason",
            "data",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class AuditEventFilter(filters.FilterSet):
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    action = filters.CharFilter(lookup_expr="startswith")
    release = filters.NumberFilter(field_name="release_id")
    actor_label = filters.CharFilter(help_text="Username, or 'system'")

    class Meta:
        model = AuditEvent
        fields = ["release", "actor", "action", "object_type", "object_id"]


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet[AuditEvent]):
    """The append-only audit log, newest first (``?ordering=id`` for oldest first). Filter by ``release``,
    ``actor``, ``actor_label``, ``action`` (prefix), ``created_after``/``created_before``."""

    queryset = AuditEvent.objects.order_by("-id")
    ordering_fields = ["id", "created_at"]
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
