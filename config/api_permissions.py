from rest_framework.permissions import DjangoModelPermissions


class RoleModelPermissions(DjangoModelPermissions):
    """Model permissions granted to the role groups, reads included: an outsider with no role sees nothing.

    Transition actions are POSTs that check their own domain permission in the service, so a view lists them in
    ``view_only_actions``: for those the user only needs to be allowed to see the object.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view):  # type: ignore[no-untyped-def]
        if getattr(view, "action", None) in getattr(view, "view_only_actions", ()):
            queryset = self._queryset(view)
            perm = f"{queryset.model._meta.app_label}.view_{queryset.model._meta.model_name}"
            return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))
        return super().has_permission(request, view)
