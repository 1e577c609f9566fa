from rest_framework.routers import DefaultRouter

from .views import (
    ApprovalPolicyViewSet,
    ApprovalViewSet,
    ChecklistItemViewSet,
    ChecklistTemplateViewSet,
    ChecklistViewSet,
    FreezeWindowViewSet,
    PolicyStatusViewSet,
    ReleaseApprovalViewSet,
)

router = DefaultRouter(trailing_slash=True)
router.register("approval-policies", ApprovalPolicyViewSet, basename="approval-policy")
router.register("approvals", ApprovalViewSet, basename="approval")
router.register("policy-status", PolicyStatusViewSet, basename="policy-status")
router.register("checklist-templates", ChecklistTemplateViewSet, basename="checklist-template")
router.register("checklists", ChecklistViewSet, basename="checklist")
router.register("checklist-items", ChecklistItemViewSet, basename="checklist-item")
router.register("freeze-windows", FreezeWindowViewSet, basename="freeze-window")
# The approve action of the release resource: /api/v1/releases/{id}/approve/ (releases' router has no such route).
router.register("releases", ReleaseApprovalViewSet, basename="release-approval")

urlpatterns = router.urls
