"""/api/v1/: each app contributes its routes from its own ``api/urls.py``."""

from django.urls import include, path

from core.api.auth_views import ObtainTokenView, RevokeTokenView, RotateTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("auth/token/rotate/", RotateTokenView.as_view(), name="api-token-rotate"),
    path("auth/token/revoke/", RevokeTokenView.as_view(), name="api-token-revoke"),
    # Before core's router, whose ``audit-events/<id>/`` would swallow ``audit-events/evidence/``.
    path("", include("evidence.api.urls")),
    path("", include("core.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("opportunities.api.urls")),
]
