"""Readable text forms of a release's structured content, shared by the authoring form, the read-only display and
the diff: a flow is its steps one per line, parameters are ``key = value`` lines. Parsing reports the line at
fault, so an author fixes a typo without reading JSON."""

from __future__ import annotations

import json
import re
from typing import Any

# A step is a name a flow engine can address: letters, digits, '_', '-', '.', ':' and spaces inside.
_STEP = re.compile(r"^[\w][\w .:\-]{0,119}$")
_KEY = re.compile(r"^[A-Za-z_][\w.\-]{0,79}$")


class ContentSyntaxError(ValueError):
    """A line of an authored text that cannot be read; ``messages`` name each bad line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def flow_steps(flow: Any) -> list[str] | None:
    """The steps of a flow stored as ``{"steps": [names]}``, or None when it has another shape."""
    if (
        isinstance(flow, dict)
        and set(flow) == {"steps"}
        and isinstance(flow["steps"], list)
        and all(isinstance(step, str) for step in flow["steps"])
    ):
        return list(flow["steps"])
    if flow in ({}, [], None):
        return []
    return None


def flow_to_text(flow: Any) -> str:
    steps = flow_steps(flow)
    if steps is not None:
        return "\n".join(steps)
    # A flow of another shape (an older JSON graph) is shown as indented JSON, still line-diffable.
    return json.dumps(flow, indent=2, sort_keys=True, ensure_ascii=False)


def text_to_flow(text: str) -> dict[str, Any] | Any:
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ContentSyntaxError([f"Line {exc.lineno}: not valid JSON ({exc.msg})."]) from exc
    steps: list[str] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not _STEP.match(line):
            problems.append(
                f"Line {number} ({line[:40]!r}): a step is a name of letters, digits, spaces, '_', '-', '.' or ':' "
                "(at most 120 characters)."
            )
        elif line in steps:
            problems.append(f"Line {number} ({line!r}): the step is already listed.")
        else:
            steps.append(line)
    if problems:
        raise ContentSyntaxError(problems)
    return {"steps": steps} if steps else {}


def parameters_to_text(parameters: Any) -> str:
    if not isinstance(parameters, dict):
        return json.dumps(parameters)
    return "\n".join(f"{key} = {_format_value(value)}" for key, value in sorted(parameters.items()))


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # Quoted when the bare text would read back as a number or a boolean.
        return json.dumps(value, ensure_ascii=False) if _parse_value(value) != value else value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        pass
    else:
        if number == number and number not in (float("inf"), float("-inf")):
            return number
    if raw.startswith(('"', "[", "{")):
        return json.loads(raw)
    return raw


def text_to_parameters(text: str) -> dict[str, Any]:
    """``key = value`` lines to a dict: numbers, booleans (true/false), null, quoted or bare strings, JSON lists."""
    parameters: dict[str, Any] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            problems.append(f"Line {number} ({line[:40]!r}): write it as 'key = value'.")
            continue
        if not _KEY.match(key):
            problems.append(f"Line {number}: {key[:40]!r} is not a parameter name (letters, digits, '_', '.', '-').")
            continue
        if key in parameters:
            problems.append(f"Line {number}: {key!r} is set twice.")
            continue
        if not value:
            problems.append(f"Line {number}: {key!r} has no value.")
            continue
        try:
            parameters[key] = _parse_value(value)
        except json.JSONDecodeError as exc:
            problems.append(f"Line {number}: the value of {key!r} is not valid JSON ({exc.msg}).")
    if problems:
        raise ContentSyntaxError(problems)
    return parameters


def tools_to_text(tools: Any) -> str:
    return "\n".join(str(tool) for tool in tools) if isinstance(tools, list) else json.dumps(tools)


def text_to_tools(text: str) -> list[str]:
    tools: list[str] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.strip()
        if not name:
            continue
        if len(name) > 120 or not _STEP.match(name):
            problems.append(f"Line {number} ({name[:40]!r}): a tool is a name without punctuation (at most 120).")
        elif name in tools:
            problems.append(f"Line {number}: {name!r} is listed twice.")
        else:
            tools.append(name)
    if problems:
        raise ContentSyntaxError(problems)
    return tools
