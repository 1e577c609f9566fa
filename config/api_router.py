"""/api/v1/: each app contributes its routes from its own ``api/urls.py``."""

from django.urls import include, path

from releases.api.views import ObtainTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("", include("core.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("monitoring.api.urls")),
]
