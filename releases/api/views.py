from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import request_actor
from core.api.pagination import CappedLimitOffsetPagination
from core.errors import DomainValidationError
from releases import services
from releases.choices import ReleaseStatus
from releases.diff import release_diff
from releases.models import AutomationSolution, Release
from releases.selectors import release_list
from releases.state_machine import TRANSITIONS

from .listing import release_rows, render_releases
from .serializers import (
    OverridableTransitionInputSerializer,
    PromoteInputSerializer,
    ReassignInputSerializer,
    ReleaseDiffQuerySerializer,
    ReleaseDiffSerializer,
    ReleaseSerializer,
    SolutionSerializer,
    TransitionErrorSerializer,
    TransitionInputSerializer,
)


class SolutionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[AutomationSolution],
):
    """Automation solutions. Archive one with ``is_active: false``; governed rows are never deleted."""

    queryset = AutomationSolution.objects.select_related("owner").order_by("name")
    serializer_class = SolutionSerializer
    filterset_fields = ["audience", "is_active", "key"]
    ordering_fields = ["name", "created_at"]

    def perform_create(self, serializer: SolutionSerializer) -> None:
        serializer.instance = services.solution_create(actor=request_actor(self.request), **serializer.validated_data)

    def perform_update(self, serializer: SolutionSerializer) -> None:
        assert serializer.instance is not None
        fields = {k: v for k, v in serializer.validated_data.items() if k != "key"}
        serializer.instance = services.solution_update(
            solution=serializer.instance, actor=request_actor(self.request), **fields
        )


class ReleaseFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=ReleaseStatus.choices)

    class Meta:
        model = Release
        fields = ["status", "solution", "risk_level", "is_emergency", "author"]


TRANSITION_RESPONSES = {
    200: ReleaseSerializer,
    400: OpenApiResponse(description="Validation error, e.g. a missing reason"),
    403: OpenApiResponse(description="Role or separation of duties refuses the action"),
    409: TransitionErrorSerializer,
}


def _transition_action(name: str, doc: str, input_serializer: type[TransitionInputSerializer] | None = None) -> Any:
    """A POST action running the named transition service: input serializer → service → output serializer."""
    if input_serializer is None:
        input_serializer = (
            OverridableTransitionInputSerializer if TRANSITIONS[name].overridable else TransitionInputSerializer
        )

    @extend_schema(request=input_serializer, responses=TRANSITION_RESPONSES, description=doc)
    def handler(self: ReleaseViewSet, request: Request, pk: str | None = None) -> Response:
        release = self.get_object()
        payload = input_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        arguments: dict[str, Any] = {"release": release, "actor": request_actor(request)}
        reason = payload.validated_data.get("reason", "")
        if name != "submit":
            arguments["reason"] = reason
        if payload.validated_data.get("override"):
            arguments["override"] = True
        if "from_stage" in payload.validated_data:
            arguments["from_stage"] = payload.validated_data["from_stage"]
        updated = services.TRANSITION_SERVICES[name](**arguments)
        return Response(ReleaseSerializer(release_list().get(pk=updated.pk), context={"request": request}).data)

    handler.__name__ = name
    handler.__doc__ = doc
    return action(detail=True, methods=["post"], url_path=name.replace("_", "-"))(handler)


class ReleaseViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Release],
):
    """Releases of automation solutions. Content (including ``stages``) is editable only in ``draft``;
    every lifecycle step is a POST action. An illegal transition answers 409 ``{code, detail}``."""

    serializer_class = ReleaseSerializer
    filterset_class = ReleaseFilter
    ordering_fields = ["created_at", "updated_at", "version"]
    # Transitions check their own domain permission in the service; the caller only needs to see the release.
    # ``approve`` is governance's (governance.api.views.ReleaseApprovalViewSet, same URL): a decision, not a button.
    view_only_actions = (*TRANSITIONS, "reassign", "diff", "new_version")

    def get_queryset(self) -> QuerySet[Release]:
        return release_list().order_by("-created_at")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The same JSON per release as the detail, rendered from plain rows (``releases.api.listing``). A comment,
        # not a docstring: drf-spectacular would publish a docstring as the operation's description.
        releases = release_rows(self.filter_queryset(Release.objects.order_by("-created_at")))
        # The page and the count of all releases in one statement (``paginate_counted``).
        if isinstance(self.paginator, CappedLimitOffsetPagination):
            page = self.paginator.paginate_counted(releases, request)
        else:
            page = self.paginate_queryset(releases)
        if page is None:
            return Response(render_releases(list(releases), user=request.user))
        return self.get_paginated_response(render_releases(page, user=request.user))

    def perform_create(self, serializer: ReleaseSerializer) -> None:
        serializer.instance = services.release_create(
            actor=request_actor(self.request),
            solution=serializer.validated_data["solution"],
            stages=serializer.stage_specs() or (),
            co_authors=serializer.validated_data.get("co_authors", ()),
            **serializer.service_fields(),
        )

    def perform_update(self, serializer: ReleaseSerializer) -> None:
        assert serializer.instance is not None
        if "solution" in serializer.validated_data and serializer.validated_data["solution"] != (
            serializer.instance.solution
        ):
            raise DomainValidationError({"solution": ["A release cannot move to another solution."]})
        actor = request_actor(self.request)
        release = serializer.instance
        if "co_authors" in serializer.validated_data:
            # Ownership is its own audited write (author or program manager), not a content edit.
            release = services.release_reassign(
                release=release, actor=actor, co_authors=serializer.validated_data["co_authors"]
            )
        stages = serializer.stage_specs()
        fields = serializer.service_fields()
        if fields or stages is not None or "co_authors" not in serializer.validated_data:
            release = services.release_update(release=release, actor=actor, stages=stages, **fields)
        serializer.instance = release

    @extend_schema(request=ReassignInputSerializer, responses=TRANSITION_RESPONSES)
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        """Change who owns a draft: a program manager names the author and co-authors; the author names
        co-authors. Audited as ``release.reassigned``."""
        payload = ReassignInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        release = services.release_reassign(
            release=self.get_object(), actor=request_actor(request), **payload.validated_data
        )
        return Response(ReleaseSerializer(release_list().get(pk=release.pk), context={"request": request}).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("against", int, description="A release of the same solution; default: the previous one")
        ],
        responses={
            200: ReleaseDiffSerializer,
            400: OpenApiResponse(description="``against`` is not a release of this solution"),
        },
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None) -> Response:
        """What changed: a unified diff of the prompt and the flow, and a structured diff of model, parameters,
        tools, markets and stages, against ``?against=<release id>`` or the previous release of the solution."""
        release = self.get_object()
        query = ReleaseDiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        against = None
        if "against" in query.validated_data:
            against = release_list().filter(pk=query.validated_data["against"], solution_id=release.solution_id).first()
            if against is None:
                raise DomainValidationError({"against": ["Choose a release of the same solution."]})
        return Response(ReleaseDiffSerializer(release_diff(release=release, against=against).as_dict()).data)

    @extend_schema(request=None, responses={201: ReleaseSerializer, 403: OpenApiResponse(description="Not an author")})
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request: Request, pk: str | None = None) -> Response:
        """A new draft of the solution with this release's content and stages (its diff is empty until edited);
        the caller becomes its author."""
        created = services.release_new_version(release=self.get_object(), actor=request_actor(request))
        return Response(
            ReleaseSerializer(release_list().get(pk=created.pk), context={"request": request}).data, status=201
        )

    submit = _transition_action("submit", doc="draft → in_review. Needs complete content and a valid stage plan.")
    request_changes = _transition_action("request_changes", doc="in_review → draft, with a reason.")
    reject = _transition_action("reject", doc="in_review → rejected, with a reason.")

    cancel = _transition_action("cancel", doc="draft | in_review | approved → cancelled, with a reason.")
    start_rollout = _transition_action("start_rollout", doc="approved → rolling_out at the first stage.")
    promote = _transition_action(
        "promote",
        doc="Next stage, or launched from the last one. Needs the hold time elapsed unless overridden, and "
        "``from_stage``: the position of the stage you promote from (409 ``stale_stage`` if it moved).",
        input_serializer=PromoteInputSerializer,
    )
    pause = _transition_action("pause", doc="rolling_out → paused, with a reason (program managers, on-call).")
    resume = _transition_action("resume", doc="paused → rolling_out; the stage's hold time restarts.")
    rollback = _transition_action(
        "rollback", doc="rolling_out | paused | launched | verifying → rolled_back, with a reason."
    )
    begin_verification = _transition_action("begin_verification", doc="launched → verifying.")
    complete_verification = _transition_action(
        "complete_verification", doc="verifying → verified once the verification window has elapsed."
    )
