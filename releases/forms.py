"""Form fields shared by the admin of every app that edits markets (releases, stages, freeze windows)."""

from __future__ import annotations

from typing import Any

from django import forms

from .content import (
    ContentSyntaxError,
    flow_to_text,
    parameters_to_text,
    text_to_flow,
    text_to_parameters,
    text_to_tools,
    tools_to_text,
)
from .markets import known_markets
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


class MarketChoicesField(forms.TypedMultipleChoiceField):
    """The release's markets as checkboxes from the known markets (``releases.markets``), not typed codes."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("choices", lambda: [(code, code) for code in sorted(known_markets())])
        kwargs.setdefault("help_text", "Tick every market this release serves; the stages below choose among them.")
        super().__init__(**kwargs)

    def has_changed(self, initial: Any, data: Any) -> bool:
        # Order carries no meaning (the content hash sorts markets).
        return set(initial or []) != set(data or [])


class _TextContentField(forms.CharField):
    """A structured content value edited as readable lines: ``to_text`` shows it, ``parse`` reads it back and
    names the bad lines."""

    to_text: Any = staticmethod(str)
    parse: Any = staticmethod(str)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6, "class": "vLargeTextField content-lines"}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) else self.to_text(value)

    def to_python(self, value: Any) -> Any:
        if value is None:
            # A POST without the box at all (a script, not the page) means empty, not a NULL for the database.
            value = ""
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ContentSyntaxError as exc:
            raise forms.ValidationError(exc.messages) from exc

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return bool(self.to_python(data) != (initial if initial is not None else self.to_python("")))
        except forms.ValidationError:
            return True


class FlowField(_TextContentField):
    to_text = staticmethod(flow_to_text)
    parse = staticmethod(text_to_flow)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text", "One step per line, in order (e.g. identify_order). A flow of another shape stays JSON."
        )
        super().__init__(**kwargs)


class ParametersField(_TextContentField):
    to_text = staticmethod(parameters_to_text)
    parse = staticmethod(text_to_parameters)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text", "One 'key = value' per line: numbers (0.2), true/false, null, text (quote it to keep \"1\")."
        )
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField content-lines"}))
        super().__init__(**kwargs)


class ToolsField(_TextContentField):
    to_text = staticmethod(tools_to_text)
    parse = staticmethod(text_to_tools)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "One tool name per line.")
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField content-lines"}))
        super().__init__(**kwargs)
