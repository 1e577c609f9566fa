"""What changed between two releases of a solution: a side-by-side line diff of the prompt and the flow
(difflib; the templates escape every line) and a structured diff of model, parameters, tools, markets and
stages. A read: nothing here writes. Reviewers read it on the release page, the review queue and the API."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .content import flow_to_text
from .models import Release, RolloutStage


def release_previous(release: Release) -> Release | None:
    """The release of the same solution with the highest version below this one."""
    return (
        Release.objects.with_related()
        .filter(solution_id=release.solution_id, version__lt=release.version)
        .order_by("-version")
        .first()
    )


@dataclass(frozen=True)
class DiffRow:
    """One side-by-side row: ``kind`` is equal, replace, delete (left only) or insert (right only)."""

    kind: str
    left_no: int | None
    left: str
    right_no: int | None
    right: str


@dataclass
class TextDiff:
    name: str
    rows: list[DiffRow]
    added: int
    removed: int
    unified: str

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@dataclass
class FieldChange:
    """A structured change: ``before``/``after`` values, plus what was added and removed for lists and maps."""

    name: str
    before: Any
    after: Any
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class ReleaseDiff:
    release: Release
    against: Release | None
    texts: list[TextDiff]
    fields: list[FieldChange]

    @property
    def is_empty(self) -> bool:
        return not self.fields and not any(text.changed for text in self.texts)

    def summary(self) -> str:
        if self.against is None:
            return "first release of the solution"
        parts = [f"{t.name} +{t.added} −{t.removed}" for t in self.texts if t.changed]
        parts += [change.name for change in self.fields]
        return ", ".join(parts) if parts else "no change"

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.pk,
            "against": self.against.pk if self.against else None,
            "against_version": self.against.version if self.against else None,
            "empty": self.is_empty,
            "summary": self.summary(),
            "texts": [
                {"name": t.name, "added": t.added, "removed": t.removed, "unified": t.unified} for t in self.texts
            ],
            "changes": [
                {
                    "name": c.name,
                    "before": c.before,
                    "after": c.after,
                    "added": c.added,
                    "removed": c.removed,
                    "changed": c.changed,
                }
                for c in self.fields
            ],
        }


def text_diff(name: str, before: str, after: str, *, left_label: str, right_label: str) -> TextDiff:
    left, right = before.splitlines(), after.splitlines()
    rows: list[DiffRow] = []
    added = removed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [
                DiffRow("equal", i + 1, left[i], j + 1, right[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        removed += i2 - i1
        added += j2 - j1
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            kind = "replace" if has_left and has_right else ("delete" if has_left else "insert")
            rows.append(
                DiffRow(
                    kind,
                    i + 1 if has_left else None,
                    left[i] if has_left else "",
                    j + 1 if has_right else None,
                    right[j] if has_right else "",
                )
            )
    unified = "\n".join(difflib.unified_diff(left, right, fromfile=left_label, tofile=right_label, lineterm="", n=3))
    return TextDiff(name=name, rows=rows, added=added, removed=removed, unified=unified)


def _stage_row(stage: RolloutStage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "traffic_percent": stage.traffic_percent,
        "markets": list(stage.markets or []),
        "min_hold": str(stage.min_hold),
        "min_sample_size": stage.min_sample_size,
    }


def _list_change(name: str, before: list[Any], after: list[Any]) -> FieldChange | None:
    if before == after:
        return None
    return FieldChange(
        name=name,
        before=before,
        after=after,
        added=[str(x) for x in after if x not in before],
        removed=[str(x) for x in before if x not in after],
    )


def release_diff(*, release: Release, against: Release | None = None, previous: bool = True) -> ReleaseDiff:
    """The diff of ``release`` against ``against`` (by default, when ``previous``, the previous release of the
    solution). With nothing to compare against, everything reads as added."""
    if against is None and previous:
        against = release_previous(release)
    label = f"v{against.version}" if against else "(nothing)"
    base_prompt = against.system_prompt if against else ""
    base_flow = flow_to_text(against.resolution_flow) if against else ""
    texts = [
        text_diff("Prompt", base_prompt, release.system_prompt, left_label=label, right_label=f"v{release.version}"),
        text_diff(
            "Flow",
            base_flow,
            flow_to_text(release.resolution_flow),
            left_label=label,
            right_label=f"v{release.version}",
        ),
    ]
    changes: list[FieldChange] = []
    for name, attr in (("Model", "model_name"), ("Knowledge base", "knowledge_base_version")):
        before = getattr(against, attr) if against else ""
        if before != getattr(release, attr):
            changes.append(FieldChange(name=name, before=before, after=getattr(release, attr)))
    old_params = dict(against.model_parameters or {}) if against else {}
    new_params = dict(release.model_parameters or {})
    if old_params != new_params:
        changes.append(
            FieldChange(
                name="Parameters",
                before=old_params,
                after=new_params,
                added=sorted(k for k in new_params if k not in old_params),
                removed=sorted(k for k in old_params if k not in new_params),
                changed=sorted(k for k in new_params if k in old_params and old_params[k] != new_params[k]),
            )
        )
    for name, attr in (("Tools", "tools"), ("Markets", "markets")):
        change = _list_change(
            name, list(getattr(against, attr) or []) if against else [], list(getattr(release, attr) or [])
        )
        if change is not None:
            changes.append(change)
    old_stages = [_stage_row(s) for s in against.ordered_stages] if against else []
    new_stages = [_stage_row(s) for s in release.ordered_stages]
    if old_stages != new_stages:
        changed_positions = [
            f"stage {n}"
            for n in range(1, max(len(old_stages), len(new_stages)) + 1)
            if (old_stages[n - 1] if n <= len(old_stages) else None)
            != (new_stages[n - 1] if n <= len(new_stages) else None)
        ]
        changes.append(FieldChange(name="Stages", before=old_stages, after=new_stages, changed=changed_positions))
    return ReleaseDiff(release=release, against=against, texts=texts, fields=changes)
