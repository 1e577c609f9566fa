from rest_framework.routers import DefaultRouter

from .views import ContactReasonVolumeViewSet, GapViewSet, OpportunityViewSet

router = DefaultRouter(trailing_slash=True)
router.register("contact-reason-volumes", ContactReasonVolumeViewSet, basename="contact-reason-volume")
router.register("gaps", GapViewSet, basename="gap")
router.register("opportunities", OpportunityViewSet, basename="opportunity")

urlpatterns = router.urls
