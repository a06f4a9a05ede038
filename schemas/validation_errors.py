"""Problem lines for pydantic errors: the field path, the bad value, what is allowed.

`config_problem` turns one error of the configuration model into a line such
as `rules.metrics.0.op: invalid value 'up'; allowed: 'above' or 'below'`.
It drops the union tags pydantic adds to an error's location, so the path is
the one in the file, and it reads the model to list the allowed fields and
types. `describe_value` shows a value briefly, in the words of YAML.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import date, time
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from schemas.durations import DURATION_FORMS

# The maximum length, in characters, of a value in a problem line before it is cut.
VALUE_WIDTH = 60

# Parts of a field name that suggest a secret written into the file.
SECRET_WORDS = ("token", "key", "secret", "password")
SECRETS_HINT = (
    "put secrets in environment variables named by token_env, routing_key_env, "
    "secret_env or password_env"
)


def describe_value(value: object, width: int = VALUE_WIDTH) -> str:
    """Show a value briefly: strings quoted, mappings and lists cut between items.

    Booleans, null and dates are written as YAML writes them. A string longer
    than `width` is cut and followed by its length.
    """
    if isinstance(value, str):
        if len(value) <= width:
            return repr(value)
        return f"{value[: width - 20]!r}... ({len(value)} characters)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, date | time):
        # datetime is a date, so it is covered too.
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        entries = [
            f"{describe_value(key, width)}: {describe_value(item, width)}"
            for key, item in value.items()
        ]
        return _join_cut(entries, "{", "}", width)
    if isinstance(value, list | tuple):
        entries = [describe_value(item, width) for item in value]
        return _join_cut(entries, "[", "]", width)
    return f"a {type(value).__name__}"


def _join_cut(entries: list[str], opening: str, closing: str, width: int) -> str:
    """Join entries until they pass `width`, then count the ones left out."""
    kept: list[str] = []
    length = 0
    for entry in entries:
        if kept and length + len(entry) > width:
            kept.append(f"... {len(entries) - len(kept)} more")
            break
        kept.append(entry)
        length += len(entry) + 2
    return opening + ", ".join(kept) + closing


def config_problem(error: ErrorDetails, root: type[BaseModel]) -> str:
    """Describe one error of `root`'s validation as a line of a configuration check."""
    place = _resolve(tuple(error["loc"]), root)
    location = ".".join(place.path) or "(top level)"
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind in {"value_error", "assertion_error"}:
        # The model's own checks already name the value and the fix.
        message = error["msg"].removeprefix("Value error, ")
        return f"{location}: {message.removeprefix('Assertion failed, ')}"
    if kind == "extra_forbidden":
        # The value is not shown: an unknown field is often a misplaced secret.
        fields = _field_names(place.parent)
        allowed = f"; allowed: {', '.join(fields)}" if fields else ""
        name = str(error["loc"][-1]).lower() if error["loc"] else ""
        if any(word in name for word in SECRET_WORDS):
            return f"{location}: unknown field{allowed}. Remove it, and {SECRETS_HINT}"
        return f"{location}: unknown field{allowed}"
    if kind == "missing":
        return f"{location}: missing required field"
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        # A callable discriminator is named like `_rule_type()`: every one of
        # them in the model reads the `type` field.
        field = str(context.get("discriminator", "'type'")).strip("'")
        if not field.isidentifier():
            field = "type"
        tags = ", ".join(repr(tag) for tag in place.tags) or context.get(
            "expected_tags", ""
        )
        if kind == "union_tag_not_found":
            return f"{location}: missing field {field}; allowed: {tags}"
        return f"{location}: invalid {field} {context.get('tag')!r}; allowed: {tags}"
    value_text = describe_value(error["input"])
    expected = _expected(kind, context, error["input"])
    if expected is None:
        return f"{location}: invalid value {value_text}: {error['msg']}"
    return f"{location}: invalid value {value_text}; {expected}"


def _expected(kind: str, context: dict[str, Any], value: object) -> str | None:
    """Say in plain words what an error type allows, or None for an unknown type."""
    describe = _EXPECTED.get(kind)
    return None if describe is None else describe(context, value)


def _plural(count: object, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _text(context: dict[str, Any], value: object) -> str:
    if isinstance(value, bool | int | float):
        return f"expected text, so write it in quotes: '{describe_value(value)}'"
    return "expected text"


def _list(context: dict[str, Any], value: object) -> str:
    if isinstance(value, str | int | float):
        return f"expected a list, so write one item as [{value}]"
    return "expected a list, such as [a, b]"


_TIME = "expected a time of day, such as 02:00 or 14:30:00"
_DATE = "expected a date, such as 2024-05-01"
_DATETIME = "expected a date and time, such as 2024-05-01T09:00:00Z"
_DURATION = f"expected a duration; {DURATION_FORMS}"

_EXPECTED: dict[str, Callable[[dict[str, Any], object], str]] = {
    "literal_error": lambda c, v: f"allowed: {c['expected']}",
    "enum": lambda c, v: f"allowed: {c['expected']}",
    "string_type": _text,
    "string_sub_type": _text,
    "int_type": lambda c, v: "expected a whole number",
    "int_parsing": lambda c, v: "expected a whole number",
    "int_from_float": lambda c, v: "expected a whole number",
    "float_type": lambda c, v: "expected a number",
    "float_parsing": lambda c, v: "expected a number",
    "finite_number": lambda c, v: "expected a finite number",
    "bool_type": lambda c, v: "expected true or false",
    "bool_parsing": lambda c, v: "expected true or false",
    "dict_type": lambda c, v: "expected a mapping of names to values",
    "mapping_type": lambda c, v: "expected a mapping of names to values",
    "model_type": lambda c, v: "expected a mapping of fields",
    "model_attributes_type": lambda c, v: "expected a mapping of fields",
    "list_type": _list,
    "tuple_type": _list,
    "set_type": _list,
    "frozen_set_type": _list,
    "greater_than": lambda c, v: f"expected a value above {c['gt']}",
    "greater_than_equal": lambda c, v: f"expected {c['ge']} or more",
    "less_than": lambda c, v: f"expected a value below {c['lt']}",
    "less_than_equal": lambda c, v: f"expected {c['le']} or less",
    "multiple_of": lambda c, v: f"expected a multiple of {c['multiple_of']}",
    "string_too_short": lambda c, v: (
        "expected at least " + _plural(c["min_length"], "character")
    ),
    "string_too_long": lambda c, v: (
        "expected at most " + _plural(c["max_length"], "character")
    ),
    "too_short": lambda c, v: f"expected at least {_plural(c['min_length'], 'item')}",
    "too_long": lambda c, v: f"expected at most {_plural(c['max_length'], 'item')}",
    "string_pattern_mismatch": lambda c, v: (
        f"expected text matching the regular expression {c['pattern']}"
    ),
    "time_type": lambda c, v: _TIME,
    "time_parsing": lambda c, v: _TIME,
    "date_type": lambda c, v: _DATE,
    "date_parsing": lambda c, v: _DATE,
    "date_from_datetime_parsing": lambda c, v: _DATE,
    "date_from_datetime_inexact": lambda c, v: _DATE,
    "datetime_type": lambda c, v: _DATETIME,
    "datetime_parsing": lambda c, v: _DATETIME,
    "datetime_from_date_parsing": lambda c, v: _DATETIME,
    "timezone_aware": lambda c, v: (
        "expected a time with a zone, such as 2024-05-01T09:00:00+02:00"
    ),
    "timedelta_type": lambda c, v: _DURATION,
    "timedelta_parsing": lambda c, v: _DURATION,
}


class _Place:
    """Where an error location points in the model.

    `path` is the location without union tags, `parent` the model that
    contains the last part, and `tags` the tags allowed where the location
    ends at a tagged union.
    """

    def __init__(self) -> None:
        self.path: list[str] = []
        self.parent: type[BaseModel] | None = None
        self.tags: list[str] = []


def _resolve(loc: tuple[int | str, ...], root: type[BaseModel]) -> _Place:
    """Follow a pydantic error location through the model's annotations.

    A part that names a member of a tagged union is a tag pydantic adds, not
    a key of the file, so it is left out of the path.
    """
    place = _Place()
    annotation, metadata = _unwrap(root, [])
    for part in loc:
        tags = _union_tags(annotation, metadata)
        if str(part) in tags:
            annotation, metadata = _unwrap(tags[str(part)], [])
            continue
        place.path.append(str(part))
        place.parent = _as_model(annotation)
        annotation, metadata = _child(annotation, part)
    place.tags = list(_union_tags(annotation, metadata))
    return place


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Strip `Annotated` and `| None` from an annotation, collecting the metadata."""
    metadata = list(metadata)
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            metadata.extend(extra)
            continue
        members = get_args(annotation) if _is_union(annotation) else ()
        others = [member for member in members if member is not type(None)]
        if len(members) == 2 and len(others) == 1:
            annotation = others[0]
            continue
        return annotation, metadata


def _child(annotation: Any, part: int | str) -> tuple[Any, list[Any]]:
    """Return the annotation of item or field `part` of `annotation`, or None."""
    model = _as_model(annotation)
    if model is not None:
        field = _field(model, str(part))
        if field is None:
            return None, []
        return _unwrap(field.annotation, [field, *field.metadata])
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin in (list, tuple, set, frozenset) and arguments:
        return _unwrap(arguments[0], [])
    if origin is dict and len(arguments) == 2:
        return _unwrap(arguments[1], [])
    return None, []


def _field(model: type[BaseModel], name: str) -> FieldInfo | None:
    """Return the field that `name`, a field name or its alias, selects."""
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def _field_names(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _union_tags(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    """Map each tag of a tagged union to the member it selects; empty otherwise."""
    if not _is_union(annotation):
        return {}
    discriminator = None
    for item in metadata:
        if isinstance(item, FieldInfo | Discriminator) and isinstance(
            item.discriminator, str
        ):
            discriminator = item.discriminator
    tags: dict[str, Any] = {}
    for member in get_args(annotation):
        inner, inner_metadata = _unwrap(member, [])
        tag = next((m.tag for m in inner_metadata if isinstance(m, Tag)), None)
        if tag is not None:
            tags[tag] = inner
            continue
        model = _as_model(inner)
        field = _field(model, discriminator) if model and discriminator else None
        if field is not None and get_origin(field.annotation) is Literal:
            for value in get_args(field.annotation):
                tags[str(value)] = inner
    return tags
