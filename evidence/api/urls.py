from django.urls import path

from .views import RangeEvidenceView, ReleaseEvidenceView

# Included before core's router: ``audit-events/evidence/`` would otherwise read as an audit event's id.
urlpatterns = [
    path("releases/<int:pk>/evidence/", ReleaseEvidenceView.as_view(), name="release-evidence"),
    path("audit-events/evidence/", RangeEvidenceView.as_view(), name="audit-events-evidence"),
]
