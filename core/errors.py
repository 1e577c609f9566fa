"""Domain errors shared by every app. The API maps them to HTTP codes in one place
(``config.exception_handler``); the admin shows their ``detail`` as a message."""

from typing import Any


class DomainError(Exception):
    """Base of every refusal a service can raise. ``code`` is stable, ``detail`` is for people."""

    status_code = 409
    default_code = "conflict"

    def __init__(self, detail: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.extra}


class IllegalTransition(DomainError):
    """The release is not in a state this transition starts from."""

    default_code = "illegal_transition"


class GuardFailed(DomainError):
    """The transition is legal from this state but one of its guards refuses it now."""

    default_code = "guard_failed"


class ContentFrozen(DomainError):
    default_code = "content_frozen"


class StaleContentHash(DomainError):
    default_code = "stale_content_hash"


class DomainPermissionDenied(DomainError):
    """The actor's role does not allow the action (403)."""

    status_code = 403
    default_code = "permission_denied"


class SeparationOfDuties(DomainPermissionDenied):
    """The actor authored or last edited the release: never its approver or signer, superusers included."""

    default_code = "separation_of_duties"


class DomainValidationError(DomainError):
    """Bad input, reported per field like a serializer error (400)."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, errors: dict[str, list[str]] | str, *, code: str | None = None) -> None:
        if isinstance(errors, str):
            errors = {"detail": [errors]}
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()), code=code)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.errors)
