"""Serializer pieces every app's API shares: strict input (unknown or read-only keys are refused, never silently
ignored) and durations that cannot overflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rest_framework import serializers


class StrictInputMixin:
    """Refuse keys a write cannot use: unknown ones and read-only ones (``status``, ``content_hash``, a solution's
    ``key`` after creation...), 400 naming each field. DRF silently drops them, so a client believes it changed
    something it did not. Read-only fields may be sent unchanged (a PUT of what was read is allowed)."""

    # Fields a client may send on create but not change afterwards (e.g. a solution's ``key``).
    create_only_fields: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            self._refuse_unusable_keys(data)
        return super().to_internal_value(data)  # type: ignore[misc]

    def _refuse_unusable_keys(self, data: dict[str, Any]) -> None:
        fields = self.fields  # type: ignore[attr-defined]
        instance = getattr(self, "instance", None)
        # Nested rows (a release's stages) are written as a whole list: their read-only keys (``id``, ``position``)
        # come back from a GET and carry nothing to change, so only unknown keys are refused there.
        nested = getattr(self, "parent", None) is not None
        errors: dict[str, list[str]] = {}
        for key, value in data.items():
            field = fields.get(key)
            if field is None:
                errors[key] = ["Unknown field."]
                continue
            read_only = field.read_only or (instance is not None and key in self.create_only_fields)
            if read_only and not nested and not self._unchanged(field, instance, value):
                errors[key] = ["This field is read-only."]
        if errors:
            raise serializers.ValidationError(errors)

    @staticmethod
    def _unchanged(field: serializers.Field[Any, Any, Any, Any], instance: Any, value: Any) -> bool:
        if instance is None:
            return False
        try:
            attribute = field.get_attribute(instance)
            if attribute is None:
                return value is None
            current = field.to_representation(attribute)
        except Exception:
            return False
        return bool(current == value)


class BoundedDurationField(serializers.DurationField):
    """A duration between ``min_value`` and ``max_value``; input too large for Python's timedelta (e.g.
    ``"9999999999 00:00:00"``) is a 400 on the field, not an OverflowError."""

    def __init__(self, *, min_value: timedelta, max_value: timedelta, **kwargs: Any) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_internal_value(self, value: Any) -> timedelta:
        try:
            return super().to_internal_value(value)
        except (OverflowError, ValueError):
            self.fail("invalid", format="[DD] [HH:[MM:]]ss[.uuuuuu]")
            raise  # unreachable: fail() raises
