from django.urls import path
from rest_framework.routers import DefaultRouter

from .views import ContactReasonVolumeViewSet, GapView, OpportunityViewSet

router = DefaultRouter(trailing_slash=True)
router.register("contact-reason-volumes", ContactReasonVolumeViewSet, basename="contact-reason-volume")
router.register("opportunities", OpportunityViewSet, basename="opportunity")

urlpatterns = [path("gaps/", GapView.as_view(), name="gaps"), *router.urls]
