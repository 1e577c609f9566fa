"""Form fields shared by the admin of every app that edits markets (releases, stages, freeze windows)."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import validate_market_codes


class MarketsField(forms.JSONField):
    """Markets typed as ``US, DE`` or as a JSON list; cleaned to a list of uppercase codes, validated like the
    model field (the services validate again: the form only spares the user a round trip)."""

    default_validators = [validate_market_codes]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma-separated market codes, e.g. US, DE.")
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not value.strip().startswith(("[", '"')):
            return [code.strip().upper() for code in value.split(",") if code.strip()]
        parsed = super().to_python(value)
        if parsed in (None, ""):
            return []
        if isinstance(parsed, list):
            return [code.strip().upper() if isinstance(code, str) else code for code in parsed]
        return parsed

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(code, str) for code in value):
            return ", ".join(value)
        return super().prepare_value(value)
