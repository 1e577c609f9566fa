from rest_framework.routers import DefaultRouter

from .views import ReleaseViewSet, SolutionViewSet

router = DefaultRouter(trailing_slash=True)
router.register("solutions", SolutionViewSet, basename="solution")
router.register("releases", ReleaseViewSet, basename="release")

urlpatterns = router.urls
