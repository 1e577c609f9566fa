"""``GET /api/v1/releases/`` rendered from plain rows, the same JSON as ``ReleaseSerializer`` gives each release.

A page of 50 releases through the nested ``ModelSerializer`` cost about 100 ms of Python per request: a model
instance per release, stage and co-author, DRF's per-field attribute lookups, and the available transitions
checked release by release. Here the page is read with ``values()`` (the releases, then their stages and
co-authors in one query each), each plain field is converted by the serializer's own field (so dates, durations and
lists come out exactly as the detail endpoint writes them), and the transitions are decided once per status
(``releases.selectors.transition_names_by_release``). The fields are taken from ``ReleaseSerializer`` itself: a
field added there is rendered here, or refused at the first request if it needs more than a column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import OuterRef, QuerySet
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import _UnvalidatedField
from rest_framework.settings import api_settings

from releases.models import Release, RolloutStage
from releases.selectors import ReleaseOwnership, transition_names_by_release

from .serializers import ReleaseSerializer, StageSerializer

Row = dict[str, Any]
# Fields of ReleaseSerializer that are not a column of the release row: rendered by ``render_releases`` itself.
_COMPOSED_FIELDS = frozenset(
    {"solution", "author", "last_editor", "co_authors", "stages", "current_stage", "available_transitions"}
)
_USERNAME = f"__{get_user_model().USERNAME_FIELD}"
_CO_AUTHOR_IDS = "co_author_ids"


# Serializer fields whose ``to_representation`` returns a value of the column's own type unchanged (``str(text)``,
# ``int(number)``, a choice's own string, a decoded JSON value): skipping the call is the same JSON, sooner.
_UNCHANGED: dict[type[Any], type[Any] | tuple[type[Any], ...]] = {
    serializers.CharField: str,
    serializers.ChoiceField: str,
    serializers.IntegerField: int,
    serializers.BooleanField: bool,
    serializers.JSONField: object,
}
_AS_IS, _DATETIME, _FIELD, _STR_LIST, _STR_KEYS = "as is", "datetime", "field", "list of str", "dict with str keys"


@dataclass(frozen=True)
class _Column:
    name: str
    source: str
    how: str
    field: Any


@cache
def _columns(serializer_class: type[serializers.Serializer[Any]], composed: frozenset[str]) -> list[_Column]:
    """Each readable field of ``serializer_class`` that renders one column, with how its value is converted."""
    columns = []
    for name, field in serializer_class().fields.items():
        if field.write_only or name in composed:
            continue
        if isinstance(
            field,
            serializers.BaseSerializer
            | serializers.RelatedField
            | serializers.ManyRelatedField
            | serializers.SerializerMethodField,
        ) or "." in (field.source or ""):
            raise ImproperlyConfigured(
                f"{serializer_class.__name__}.{name} is not a plain column: render it in releases.api.listing."
            )
        how = _FIELD
        if type(field) in _UNCHANGED:
            how = _AS_IS
        elif type(field) is serializers.DateTimeField and _iso_datetime(field):
            how = _DATETIME
        elif type(field) is serializers.ListField and type(field.child) is serializers.CharField:
            # ``[child.to_representation(item) ...]`` of strings is ``[str(item) ...]``: the same list.
            how = _STR_LIST
        elif type(field) is serializers.DictField and type(field.child) is _UnvalidatedField:
            # ``{str(key): value}``: the same dict when its keys are strings (always, for a decoded JSON object).
            how = _STR_KEYS
        columns.append(_Column(name, field.source or name, how, field))
    return columns


def _iso_datetime(field: serializers.DateTimeField) -> bool:
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    return isinstance(output_format, str) and output_format.lower() == ISO_8601 and not hasattr(field, "timezone")


def release_columns() -> list[str]:
    """What ``values()`` reads for each release of the page."""
    plain = [column.source for column in _columns(ReleaseSerializer, _COMPOSED_FIELDS)]
    return [*plain, "solution_id", "author_id", f"author{_USERNAME}", f"last_editor{_USERNAME}", "current_stage_id"]


def release_rows(releases: QuerySet[Release]) -> QuerySet[Release, Row]:
    """The rows ``render_releases`` renders. On PostgreSQL each carries its co-author ids (an array subquery in the
    same statement), so the page reads no co-author link table apart."""
    rows = releases.values(*release_columns())
    if connection.vendor != "postgresql":
        return rows
    links = Release.co_authors.through.objects.filter(release_id=OuterRef("pk")).order_by("pk").values("user_id")
    return rows.annotate(**{_CO_AUTHOR_IDS: ArraySubquery(links)})


def _render_columns(row: Row, columns: list[_Column], zone: tzinfo) -> Row:
    rendered: Row = {}
    for column in columns:
        value = row[column.source]
        # As Serializer.to_representation does, a None is written as null without asking the field.
        if value is None:
            rendered[column.name] = None
        elif _unchanged(column, value):
            rendered[column.name] = value
        elif column.how is _DATETIME and value.tzinfo is not None:
            # DateTimeField.to_representation for an aware value, without asking for the zone once per value.
            text = value.astimezone(zone).isoformat()
            rendered[column.name] = text[:-6] + "Z" if text.endswith("+00:00") else text
        else:
            rendered[column.name] = column.field.to_representation(value)
    return rendered


def _unchanged(column: _Column, value: Any) -> bool:
    """Whether the column's field would write ``value`` as it is."""
    if column.how is _AS_IS:
        return isinstance(value, _UNCHANGED[type(column.field)])
    if column.how is _STR_LIST:
        return type(value) is list and all(type(item) is str for item in value)
    if column.how is _STR_KEYS:
        return type(value) is dict and all(type(key) is str for key in value)
    return False


def render_releases(rows: Sequence[Row], *, user: Any) -> list[Row]:
    """The JSON of each release of ``rows`` (``release_rows``), in their order."""
    release_ids = [row["id"] for row in rows]
    zone = timezone.get_current_timezone()
    stage_columns = _columns(StageSerializer, frozenset())
    stages: dict[int, list[Row]] = defaultdict(list)
    stage_by_id: dict[int, Row] = {}
    co_authors: dict[int, list[int]] = defaultdict(list)
    if release_ids:
        stage_rows = RolloutStage.objects.filter(release_id__in=release_ids).order_by("release_id", "position")
        for stage in stage_rows.values("release_id", *(column.source for column in stage_columns)):
            stage_by_id[stage["id"]] = rendered = _render_columns(stage, stage_columns, zone)
            stages[stage["release_id"]].append(rendered)
        # The current stage is one of the release's own stages (only the rollout services set it); were a row ever
        # to point elsewhere, it is read here rather than failing the whole page.
        strays = {row["current_stage_id"] for row in rows} - stage_by_id.keys() - {None}
        if strays:
            stray_rows = RolloutStage.objects.filter(pk__in=strays)
            for stage in stray_rows.values(*(column.source for column in stage_columns)):
                stage_by_id[stage["id"]] = _render_columns(stage, stage_columns, zone)
        if rows and _CO_AUTHOR_IDS in rows[0]:
            co_authors.update((row["id"], row[_CO_AUTHOR_IDS]) for row in rows)
        else:
            links = Release.co_authors.through.objects.filter(release_id__in=release_ids).order_by("pk")
            for release_id, user_id in links.values_list("release_id", "user_id"):
                co_authors[release_id].append(user_id)
    transitions = transition_names_by_release(
        releases=[
            ReleaseOwnership(
                id=row["id"],
                status=row["status"],
                author_id=row["author_id"],
                co_author_ids=frozenset(co_authors[row["id"]]),
            )
            for row in rows
        ],
        user=user,
    )
    composed: dict[str, Callable[[Row], Any]] = {
        "solution": lambda row: row["solution_id"],
        "author": lambda row: row[f"author{_USERNAME}"],
        "last_editor": lambda row: row[f"last_editor{_USERNAME}"],
        "co_authors": lambda row: co_authors[row["id"]],
        "stages": lambda row: stages[row["id"]],
        "current_stage": lambda row: stage_by_id.get(row["current_stage_id"]),
        "available_transitions": lambda row: transitions[row["id"]],
    }
    columns = _columns(ReleaseSerializer, _COMPOSED_FIELDS)
    order = _field_order()
    releases: list[Row] = []
    for row in rows:
        fields = _render_columns(row, columns, zone)
        for name, compose in composed.items():
            fields[name] = compose(row)
        releases.append({name: fields[name] for name in order})
    return releases


@cache
def _field_order() -> list[str]:
    return [name for name, field in ReleaseSerializer().fields.items() if not field.write_only]
