from rest_framework.routers import DefaultRouter

from .views import EvaluationViewSet, GuardrailViewSet, IncidentViewSet, MetricDefinitionViewSet, MetricSampleViewSet

router = DefaultRouter(trailing_slash=True)
router.register("metric-definitions", MetricDefinitionViewSet, basename="metric-definition")
router.register("metric-samples", MetricSampleViewSet, basename="metric-sample")
router.register("guardrails", GuardrailViewSet, basename="guardrail")
router.register("evaluations", EvaluationViewSet, basename="evaluation")
router.register("incidents", IncidentViewSet, basename="incident")

urlpatterns = router.urls

# Notification endpoints and deliveries (issue 8): their own module, so the views above stay as they are.
from .endpoint_views import NotificationEndpointViewSet, NotificationOutboxViewSet  # noqa: E402

router.register("notification-endpoints", NotificationEndpointViewSet, basename="notification-endpoint")
router.register("notifications", NotificationOutboxViewSet, basename="notification")
urlpatterns = router.urls

# The readout hangs under the release's URL, but releases' router owns /releases/{id}/: a plain path of ours.
from django.urls import path  # noqa: E402

from .views import ReleaseReadoutView  # noqa: E402

urlpatterns = [*urlpatterns, path("releases/<int:pk>/readout/", ReleaseReadoutView.as_view(), name="release-readout")]
