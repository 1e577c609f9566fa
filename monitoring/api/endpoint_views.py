"""Notification endpoints (managed like in the admin, through the same services and audit events) and the
deliveries of the outbox, dead letters included, with their redrive."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.actors import request_actor

from ..models import NotificationEndpoint, NotificationOutbox
from ..services.endpoints import notification_endpoint_create, notification_endpoint_update
from ..services.notifications import REDRIVE_PERMISSIONS, notification_redrive
from .serializers import (
    NotificationEndpointSerializer,
    NotificationOutboxSerializer,
    RedriveInputSerializer,
    RedriveResultSerializer,
)


class NotificationEndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[NotificationEndpoint],
):
    """Where incident notifications go: a webhook URL (http or https) or an e-mail address, with the least severe
    incident it hears about. Program managers add and change them; auditors read. No delete: send
    ``is_active: false``."""

    serializer_class = NotificationEndpointSerializer
    queryset = NotificationEndpoint.objects.order_by("name", "id")
    filterset_fields = ["channel", "is_active", "min_severity"]

    def perform_create(self, serializer: NotificationEndpointSerializer) -> None:  # type: ignore[override]
        serializer.instance = notification_endpoint_create(
            actor=request_actor(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: NotificationEndpointSerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        serializer.instance = notification_endpoint_update(
            endpoint=serializer.instance, actor=request_actor(self.request), **serializer.validated_data
        )


class CanSeeDeliveries(permissions.BasePermission):
    """The outbox has no role permission of its own: who may redrive (program managers, on-call) or sees the
    endpoints (auditors) sees the deliveries. The redrive service checks its own permission."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and any(user.has_perm(perm) for perm in (*REDRIVE_PERMISSIONS, "monitoring.view_notificationendpoint"))
        )


class NotificationOutboxViewSet(viewsets.ReadOnlyModelViewSet[NotificationOutbox]):
    """Notification deliveries; ``?status=dead`` lists the dead letters (retries exhausted). POST ``redrive/`` sends
    dead letters back to delivery (program managers, on-call)."""

    serializer_class = NotificationOutboxSerializer
    permission_classes = [permissions.IsAuthenticated, CanSeeDeliveries]
    filterset_fields = ["status", "incident", "channel", "endpoint"]
    ordering_fields = ["created_at", "next_attempt_at", "dead_at"]

    def get_queryset(self) -> QuerySet[NotificationOutbox]:
        return NotificationOutbox.objects.order_by("-created_at", "-id")

    @extend_schema(
        request=RedriveInputSerializer,
        responses={
            200: RedriveResultSerializer,
            400: OpenApiResponse(description="Not exactly one of ids, incident, all"),
            403: OpenApiResponse(description="Your role may not redrive notifications"),
        },
    )
    @action(detail=False, methods=["post"])
    def redrive(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = RedriveInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        redriven = notification_redrive(
            actor=request_actor(request),
            outbox_ids=data.get("ids"),
            incident=data.get("incident"),
            all_dead=data.get("all", False),
        )
        return Response({"redriven": redriven})
