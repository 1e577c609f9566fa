"""Governance endpoints: policies, templates, checklists and sign-off, freeze windows, approvals.

Writes go through ``governance.services``; who may sign or approve is a domain rule (group membership and
separation of duties), so those POST actions only need the user to see the object."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import request_actor
from governance import selectors, services
from governance.models import (
    Approval,
    ApprovalPolicy,
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    FreezeWindow,
)
from releases.api.serializers import ReleaseSerializer
from releases.api.views import TRANSITION_RESPONSES
from releases.models import Release
from releases.selectors import release_list

from .serializers import (
    ApprovalInputSerializer,
    ApprovalPolicySerializer,
    ApprovalSerializer,
    ChecklistItemSerializer,
    ChecklistSerializer,
    ChecklistTemplateSerializer,
    DecisionInputSerializer,
    FreezeWindowSerializer,
    MarkNotApplicableInputSerializer,
    PolicyStatusSerializer,
    ReasonInputSerializer,
    SignOffInputSerializer,
)

_ERRORS = {
    400: OpenApiResponse(description="Validation error, per field"),
    403: OpenApiResponse(description="Not a member of the group, or separation of duties"),
    409: OpenApiResponse(description="{code, detail}: frozen checklist, already signed, stale content hash, ..."),
}


class ApprovalPolicyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[ApprovalPolicy],
):
    """Who must approve releases of a risk level (optionally of one solution). Program managers edit them; an edit
    applies at once to releases still collecting approvals. Deactivate with ``is_active: false``."""

    queryset = ApprovalPolicy.objects.with_requirements().order_by("is_emergency", "risk_level", "name")
    serializer_class = ApprovalPolicySerializer
    filterset_fields = ["risk_level", "is_emergency", "solution", "is_active"]

    def perform_create(self, serializer: ApprovalPolicySerializer) -> None:  # type: ignore[override]
        serializer.instance = services.approval_policy_create(
            actor=request_actor(self.request),
            requirements=serializer.requirement_specs() or [],
            **serializer.service_fields(),
        )

    def perform_update(self, serializer: ApprovalPolicySerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        serializer.instance = services.approval_policy_update(
            policy=serializer.instance,
            actor=request_actor(self.request),
            requirements=serializer.requirement_specs(),
            **serializer.service_fields(),
        )


class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Approval]):
    """Every decision ever recorded, dismissed ones included (``dismissed_at``, ``dismiss_reason``).

    ``POST approvals/`` records a decision (``approve``, ``reject`` with a comment, ``request_changes`` with a
    comment) bound to the ``content_hash`` the approver saw; ``releases/{id}/approve/`` is the same for approve.
    """

    queryset = Approval.objects.with_related().order_by("-created_at")
    serializer_class = ApprovalSerializer
    filterset_fields = ["release", "approver", "decision", "group"]
    view_only_actions = ("create", "awaiting_me")

    def get_queryset(self) -> QuerySet[Approval]:
        queryset = super().get_queryset()
        live = self.request.query_params.get("live")
        if live in {"true", "1"}:
            queryset = queryset.filter(dismissed_at__isnull=True)
        return queryset

    @extend_schema(request=DecisionInputSerializer, responses={201: ApprovalSerializer, **_ERRORS})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = DecisionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        release = get_object_or_404(Release, pk=payload.validated_data["release"])
        approval = services.approval_record(
            release=release,
            approver=request_actor(request),
            group=payload.validated_data["group"],
            decision=payload.validated_data["decision"],
            content_hash=payload.validated_data["content_hash"],
            comment=payload.validated_data["comment"],
        )
        return Response(ApprovalSerializer(approval).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: PolicyStatusSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="awaiting-me", pagination_class=None)
    def awaiting_me(self, request: Request) -> Response:
        """Releases in review where your approval would still count, with what their policy misses."""
        rows = [
            {"release": release.pk, "title": str(release), **status_.as_dict()}
            for release, status_ in selectors.awaiting_approval_by(user=request_actor(request))
        ]
        return Response(rows)


class ReleaseApprovalViewSet(viewsets.GenericViewSet[Release]):
    """``releases/{id}/approve/``: governance's action on the release resource (routed from governance's urls, so
    releases knows nothing of approvals)."""

    queryset = Release.objects.with_related()
    serializer_class = ReleaseSerializer
    # Who may approve is a domain rule (group membership, separation of duties): seeing the release is enough here.
    view_only_actions = ("approve",)

    @extend_schema(request=ApprovalInputSerializer, responses=TRANSITION_RESPONSES)
    @action(detail=True, methods=["post"], url_path="approve")
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve for one group of the release's policy (body: ``group``, ``content_hash``, ``comment``). Never
        the author or last editor; one person counts once; a stale ``content_hash`` answers 409 with the current
        one. The release moves to ``approved`` when this completes the policy and the review checklist."""
        release = self.get_object()
        payload = ApprovalInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.approval_record(
            release=release, approver=request_actor(request), decision="approve", **payload.validated_data
        )
        return Response(ReleaseSerializer(release_list().get(pk=release.pk), context={"request": request}).data)


class PolicyStatusViewSet(viewsets.GenericViewSet[Release]):
    """``policy-status/{release_id}/``: the release's policy, which requirements are met and which are missing."""

    queryset = Release.objects.with_related()
    serializer_class = PolicyStatusSerializer

    @extend_schema(responses={200: PolicyStatusSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        release = self.get_object()
        return Response(selectors.approval_policy_status(release=release).as_dict())


class ChecklistTemplateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[ChecklistTemplate],
):
    """Versioned SOP checklist templates per gate and risk level. ``POST`` creates a draft version; only drafts
    can be edited; ``new-version/`` copies any version into the next draft; ``activate/`` makes a draft the one
    new checklists copy (the previous active version retires). Existing checklists never change."""

    queryset = ChecklistTemplate.objects.with_items().order_by("gate", "risk_level", "-version")
    serializer_class = ChecklistTemplateSerializer
    filterset_fields = ["gate", "risk_level", "status", "version"]

    def perform_create(self, serializer: ChecklistTemplateSerializer) -> None:  # type: ignore[override]
        data = serializer.validated_data
        serializer.instance = services.checklist_template_create(
            actor=request_actor(self.request),
            gate=data["gate"],
            risk_level=data["risk_level"],
            name=data["name"],
            description=data.get("description", ""),
            items=serializer.item_specs() or [],
        )

    def perform_update(self, serializer: ChecklistTemplateSerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        data = serializer.validated_data
        for fixed in ("gate", "risk_level"):
            if fixed in data and data[fixed] != getattr(serializer.instance, fixed):
                from core.errors import DomainValidationError

                raise DomainValidationError({fixed: ["A template version cannot move to another gate or risk."]})
        serializer.instance = services.checklist_template_update(
            template=serializer.instance,
            actor=request_actor(self.request),
            name=data.get("name"),
            description=data.get("description"),
            items=serializer.item_specs(),
        )

    @extend_schema(request=None, responses={201: ChecklistTemplateSerializer, **_ERRORS})
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request: Request, pk: str | None = None) -> Response:
        draft = services.checklist_template_new_version(template=self.get_object(), actor=request_actor(request))
        return Response(self.get_serializer(draft).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ChecklistTemplateSerializer, **_ERRORS})
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        template = services.checklist_template_activate(template=self.get_object(), actor=request_actor(request))
        return Response(self.get_serializer(ChecklistTemplate.objects.with_items().get(pk=template.pk)).data)


class ChecklistViewSet(viewsets.ReadOnlyModelViewSet[Checklist]):
    """The checklists of releases: snapshots of a template version, one current per gate."""

    queryset = Checklist.objects.with_items().order_by("-created_at")
    serializer_class = ChecklistSerializer
    filterset_fields = ["release", "gate", "status"]


class ChecklistItemViewSet(viewsets.ReadOnlyModelViewSet[ChecklistItem]):
    """Checklist items. ``sign-off/`` by a member of the item's group who did not write the release (evidence
    URL where required); ``mark-na/`` for optional items, with a justification."""

    queryset = ChecklistItem.objects.select_related("checklist", "signer_group", "signed_by").order_by(
        "checklist", "position"
    )
    serializer_class = ChecklistItemSerializer
    filterset_fields = ["checklist", "checklist__release", "state", "signer_group"]
    view_only_actions = ("sign_off", "mark_na", "awaiting_me")

    @extend_schema(request=SignOffInputSerializer, responses={200: ChecklistItemSerializer, **_ERRORS})
    @action(detail=True, methods=["post"], url_path="sign-off")
    def sign_off(self, request: Request, pk: str | None = None) -> Response:
        payload = SignOffInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        item = services.checklist_item_sign_off(
            item=self.get_object(), actor=request_actor(request), **payload.validated_data
        )
        return Response(ChecklistItemSerializer(item).data)

    @extend_schema(request=MarkNotApplicableInputSerializer, responses={200: ChecklistItemSerializer, **_ERRORS})
    @action(detail=True, methods=["post"], url_path="mark-na")
    def mark_na(self, request: Request, pk: str | None = None) -> Response:
        payload = MarkNotApplicableInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        item = services.checklist_item_mark_na(
            item=self.get_object(), actor=request_actor(request), **payload.validated_data
        )
        return Response(ChecklistItemSerializer(item).data)

    @extend_schema(responses={200: ChecklistItemSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="awaiting-me", pagination_class=None)
    def awaiting_me(self, request: Request) -> Response:
        """Pending items you may sign now."""
        items = selectors.checklist_items_awaiting_sign_off_by(user=request_actor(request))
        return Response(ChecklistItemSerializer(items, many=True).data)


class FreezeWindowViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[FreezeWindow],
):
    """Periods when no rollout starts or promotes in the given markets (all when empty). ``cancel/`` lifts one
    early; rows are never deleted."""

    queryset = FreezeWindow.objects.select_related("created_by").order_by("-starts_at")
    serializer_class = FreezeWindowSerializer
    filterset_fields = ["cancelled_at"]

    def perform_create(self, serializer: FreezeWindowSerializer) -> None:  # type: ignore[override]
        serializer.instance = services.freeze_window_create(
            actor=request_actor(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: FreezeWindowSerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        serializer.instance = services.freeze_window_update(
            window=serializer.instance, actor=request_actor(self.request), **serializer.validated_data
        )

    @extend_schema(request=ReasonInputSerializer, responses={200: FreezeWindowSerializer, **_ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        payload = ReasonInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        window = services.freeze_window_cancel(
            window=self.get_object(), actor=request_actor(request), reason=payload.validated_data["reason"]
        )
        return Response(self.get_serializer(window).data)
