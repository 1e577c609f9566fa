from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.metrics import metrics_view
from evidence.admin import urls as evidence_admin_urls

admin.site.site_header = "Rollgate"
admin.site.site_title = "Rollgate"
admin.site.index_title = "Releases and governance of automation solutions"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # Admin pages of the evidence app (downloads), before the admin's own catch-all.
    path("admin/evidence/", include(evidence_admin_urls())),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_router")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Prometheus: a bearer token (METRICS_TOKEN) or a superuser's session (core/metrics.py).
    path("metrics", metrics_view, name="metrics"),
]
# /healthz and /readyz are answered by core.health.HealthProbeMiddleware, before the host check and authentication.

# HTML for people, JSON under /api/ (see config/error_views.py).
handler400 = "config.error_views.bad_request"
handler403 = "config.error_views.permission_denied"
handler404 = "config.error_views.page_not_found"
handler500 = "config.error_views.server_error"
