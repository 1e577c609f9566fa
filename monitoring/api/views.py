from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, views, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.actors import request_actor
from core.api.parsers import BoundedJSONParser
from core.errors import DomainValidationError
from core.transitions import Transition
from releases.models import Release

from .. import metrics, selectors, services
from ..filters import EvaluationFilter, GuardrailFilter, IncidentFilter, MetricSampleFilter
from ..models import Evaluation, Guardrail, Incident, MetricDefinition, MetricSample
from ..services.incidents import TRANSITION_SERVICES
from ..state_machine import ACKNOWLEDGE, INCIDENT_LIFECYCLE, MITIGATE, RESOLVE
from .parsers import BulkJSONParser
from .serializers import (
    AssignInputSerializer,
    CommentInputSerializer,
    EvaluationSerializer,
    GuardrailSerializer,
    IncidentDetailSerializer,
    IncidentEventSerializer,
    IncidentSerializer,
    IngestResultSerializer,
    MetricDefinitionSerializer,
    MetricSampleInputSerializer,
    MetricSampleSerializer,
    MitigateInputSerializer,
    ResolveInputSerializer,
)


class MetricDefinitionViewSet(viewsets.ReadOnlyModelViewSet[MetricDefinition]):
    """The metrics guardrails can watch, with their formula, direction and maturation period."""

    serializer_class = MetricDefinitionSerializer
    filterset_fields = ["key", "kind", "direction"]

    def get_queryset(self) -> QuerySet[MetricDefinition]:
        return selectors.metric_definition_list()


class MetricSampleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[MetricSample]
):
    """Metric samples. POST a JSON list of up to 10,000 rows: an idempotent upsert on (source, release, metric,
    market, arm, window_start), all or nothing; a 400 lists every bad row by index, more rows than allowed is 413."""

    serializer_class = MetricSampleSerializer
    filterset_class = MetricSampleFilter
    # The API's parsers, with orjson for JSON: a 10,000-row batch parses in a tenth of the time.
    parser_classes: list[type[BaseParser]] = [
        BulkJSONParser if parser is BoundedJSONParser else cast(type[BaseParser], parser)
        for parser in api_settings.DEFAULT_PARSER_CLASSES  # imported classes at run time, strings to the stubs
    ]
    ordering_fields = ["window_start", "received_at"]

    def get_queryset(self) -> QuerySet[MetricSample]:
        return selectors.metric_sample_list()

    @extend_schema(
        request=MetricSampleInputSerializer(many=True),
        responses={
            201: IngestResultSerializer,
            400: OpenApiResponse(description="{code, detail, rows: [{index, errors: {field: [messages]}}]}"),
            413: OpenApiResponse(description="More than 10,000 rows"),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not isinstance(request.data, list):
            raise DomainValidationError({"non_field_errors": ["Expected a JSON list of sample rows."]})
        result = services.metric_samples_ingest(rows=request.data)
        metrics.record_ingested_rows(result.rows)
        return Response({"rows": result.rows, "releases": list(result.release_ids)}, status=status.HTTP_201_CREATED)


class GuardrailViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Guardrail],
):
    """Guardrails: per release, per solution, or the default of a risk level. Deactivate with ``is_active: false``."""

    serializer_class = GuardrailSerializer
    filterset_class = GuardrailFilter

    def get_queryset(self) -> QuerySet[Guardrail]:
        return selectors.guardrail_list()

    def perform_create(self, serializer: GuardrailSerializer) -> None:  # type: ignore[override]
        serializer.instance = services.guardrail_create(actor=request_actor(self.request), **serializer.validated_data)

    def perform_update(self, serializer: GuardrailSerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        serializer.instance = services.guardrail_update(
            guardrail=serializer.instance, actor=request_actor(self.request), **serializer.validated_data
        )


class EvaluationViewSet(viewsets.ReadOnlyModelViewSet[Evaluation]):
    """One row per (guardrail, release, market, window end), with the interval and the counters after it."""

    serializer_class = EvaluationSerializer
    filterset_class = EvaluationFilter
    ordering_fields = ["window_end", "evaluated_at"]

    def get_queryset(self) -> QuerySet[Evaluation]:
        return selectors.evaluation_list()


_ACTION_RESPONSES = {
    200: IncidentDetailSerializer,
    400: OpenApiResponse(description="Validation error"),
    403: OpenApiResponse(description="Your role may not triage incidents"),
    409: OpenApiResponse(description="Illegal for the incident's status"),
}


# The body each lifecycle transition takes (none for acknowledge); its fields are the service's arguments.
_TRANSITION_INPUTS: dict[str, type[serializers.Serializer[Any]] | None] = {
    ACKNOWLEDGE.name: None,
    MITIGATE.name: MitigateInputSerializer,
    RESOLVE.name: ResolveInputSerializer,
}


def _transition_action(transition: Transition, doc: str) -> Any:
    """A POST action running one transition of the incident table: input serializer → service → the incident."""
    input_serializer = _TRANSITION_INPUTS[transition.name]
    service = TRANSITION_SERVICES[transition.name]

    @extend_schema(request=input_serializer, responses=_ACTION_RESPONSES, description=doc)
    def handler(self: IncidentViewSet, request: Request, pk: str | None = None) -> Response:
        arguments: dict[str, Any] = {}
        if input_serializer is not None:
            payload = input_serializer(data=request.data)
            payload.is_valid(raise_exception=True)
            arguments = dict(payload.validated_data)
        incident = service(incident=self.get_object(), actor=request_actor(request), **arguments)
        return self._respond(incident, request)

    handler.__name__ = transition.name
    handler.__doc__ = doc
    return action(detail=True, methods=["post"], url_path=transition.url_name)(handler)


class IncidentViewSet(viewsets.ReadOnlyModelViewSet[Incident]):
    """Incidents opened by failing guardrails. Triage with the POST actions (On-call)."""

    filterset_class = IncidentFilter
    ordering_fields = ["opened_at", "severity", "trigger_count"]
    # The actions check the triage permission in the service; the caller only needs to see the incident.
    view_only_actions = (*INCIDENT_LIFECYCLE.names(), "assign", "comment", "evaluations")

    def get_queryset(self) -> QuerySet[Incident]:
        return selectors.incident_detail() if self.detail else selectors.incident_list()

    def get_serializer_class(self) -> type[IncidentSerializer]:
        return IncidentDetailSerializer if self.detail else IncidentSerializer

    def _respond(self, incident: Incident, request: Request) -> Response:
        fresh = selectors.incident_detail().get(pk=incident.pk)
        return Response(IncidentDetailSerializer(fresh, context={"request": request}).data)

    acknowledge = _transition_action(ACKNOWLEDGE, doc="triggered → acknowledged; assigns it to you if nobody has it.")
    mitigate = _transition_action(MITIGATE, doc="triggered | acknowledged → mitigated, with a note.")
    resolve = _transition_action(RESOLVE, doc="any open status → resolved, with a manual resolution and a note.")

    @extend_schema(request=AssignInputSerializer, responses=_ACTION_RESPONSES)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        payload = AssignInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident = services.incident_assign(
            incident=self.get_object(), actor=request_actor(request), assignee=payload.validated_data["assignee"]
        )
        return self._respond(incident, request)

    @extend_schema(request=CommentInputSerializer, responses={201: IncidentEventSerializer})
    @action(detail=True, methods=["post"])
    def comment(self, request: Request, pk: str | None = None) -> Response:
        payload = CommentInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        event = services.incident_comment(
            incident=self.get_object(), actor=request_actor(request), message=payload.validated_data["message"]
        )
        return Response(IncidentEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=EvaluationSerializer(many=True))
    @action(detail=True, methods=["get"])
    def evaluations(self, request: Request, pk: str | None = None) -> Response:
        """The evaluations that opened or retriggered this incident."""
        evaluations = selectors.incident_fired_by(self.get_object())
        return Response(EvaluationSerializer(evaluations, many=True).data)


class ReleaseReadoutView(views.APIView):
    """GET /api/v1/releases/{id}/readout/: the experiment readout of a live or closed release, per market —
    every metric of its current phase, treatment vs control, the difference with its always-valid interval at
    the release's per-sequence confidence (α split over its guardrails × markets), the sample-ratio check, the
    latest verdict of each guardrail, and other sources' counts as discrepancies."""

    # Whoever may read evaluations may read the readout (RoleModelPermissions reads the model from here).
    queryset = Evaluation.objects.none()

    @extend_schema(responses={200: OpenApiResponse(description="The readout"), 404: OpenApiResponse()})
    def get(self, request: Request, pk: int) -> Response:
        release = get_object_or_404(Release.objects.select_related("current_stage"), pk=pk)
        return Response(selectors.release_readout(release=release, now=timezone.now()))
