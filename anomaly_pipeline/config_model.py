"""Typed configuration: one strict pydantic model per config, and its errors without values.

Why one base: every config this project reads (the policy file, source mappings, the training
spec) must reject a typo instead of ignoring it, must not coerce YAML's ``"3"`` into the number 3,
and must define each default once, in the model. Pydantic does the checking; this module turns
its ``ValidationError`` into the project's message parts — the key path (``bands[1].min``) and
the problem — and drops the ``input`` pydantic attaches to every error: messages name keys (cut
short), never a file's values (``anomaly_pipeline.messages``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from anomaly_pipeline.messages import shown, shown_keys

Loc = tuple[str | int, ...]

#: What a pydantic type error expected, in the project's words.
_EXPECTED: Final[dict[str, str]] = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
}
_BOUND_ERRORS: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
)
#: Pydantic's own location markers (a dict key, a union member) are not keys of the file.
_DICT_KEY: Final = "[key]"


class ConfigModel(BaseModel):
    """Base of every typed config: unknown keys are errors (a typo must not pass silently),
    scalars are strict (text is not a number), and a validated config is immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def empty_when_null(empty: object) -> BeforeValidator:
    """A YAML section whose entries are all commented out reads as null: treat it as empty."""
    return BeforeValidator(lambda value: empty if value is None else value)


class KeyProblem(ValueError):
    """Raised by a validator to name a key below the one it validates (``loc`` is relative)."""

    def __init__(self, loc: Loc, problem: str) -> None:
        super().__init__(problem)
        self.loc = loc


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (``loc``), pydantic's error ``kind``, and ``text``
    saying what is wrong in terms of keys and allowed choices only. ``allowed`` lists the keys
    of the section that holds an unknown key (``kind == "extra_forbidden"``), ``choices`` the
    values a ``Literal`` field takes (``kind == "literal_error"``)."""

    loc: Loc
    kind: str
    text: str
    allowed: tuple[str, ...] = ()
    choices: tuple[object, ...] = ()

    @property
    def key_path(self) -> str:
        """``bands[1].min`` style path (keys cut short); ``<root>`` for the whole document."""
        return key_path(self.loc)


def key_path(loc: Loc) -> str:
    """``("bands", 1, "min")`` → ``bands[1].min``; keys are cut short (they may be typos of any
    length); the empty path is ``<root>``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{shown(part)}"
    return path or "<root>"


def problems(error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Every error of ``error`` (raised validating ``model``), unknown keys first: a typo also
    shows up as a missing key, and the typo is the one to fix."""
    found = [_problem(item, model) for item in error.errors(include_url=False)]
    return sorted(found, key=lambda problem: problem.kind != "extra_forbidden")


@dataclass(frozen=True)
class UnknownKeys:
    """The unknown keys of one section, ready for a message: ``section`` is its key path ("" for
    the top level), ``keys`` the unknown keys (sorted, cut short, a few at most) and ``allowed``
    the keys the section takes (sorted)."""

    section: str
    keys: str
    allowed: list[str]


def unknown_keys(found: list[Problem]) -> UnknownKeys | None:
    """When the first problem is an unknown key: every unknown key of its section, else None."""
    first = found[0]
    if first.kind != "extra_forbidden":
        return None
    section = first.loc[:-1]
    keys = sorted(
        str(p.loc[-1]) for p in found if p.kind == "extra_forbidden" and p.loc[:-1] == section
    )
    return UnknownKeys(
        key_path(section) if section else "", shown_keys(keys), sorted(first.allowed)
    )


def _problem(item: Mapping[str, Any], model: type[BaseModel]) -> Problem:
    kind = item["type"]
    cause = item.get("ctx", {}).get("error")
    loc, holder, field, node = _walk(model, tuple(item["loc"]))
    if isinstance(cause, KeyProblem):
        loc += cause.loc
    if kind == "extra_forbidden":
        allowed = tuple(info.alias or name for name, info in holder.model_fields.items())
        return Problem(loc, kind, f"unknown field (allowed: {', '.join(allowed)})", allowed)
    if kind == "literal_error":
        choices = get_args(node)
        return Problem(loc, kind, f"must be one of {list(choices)}", choices=choices)
    bounds = _interval(field) if kind in _BOUND_ERRORS else None
    if kind == "missing":
        text = "required field is missing"
    elif bounds is not None:
        text = f"must be in {bounds}"
    elif cause is not None:  # our validators' ValueError / AssertionError
        text = str(cause)
    elif kind == "too_short":
        text = "must be a non-empty list"
    elif kind == "string_too_short":
        text = "must not be empty"
    elif kind in _EXPECTED:
        got = item.get("input")  # only its type is named, never the value
        text = f"must be {_EXPECTED[kind]}, got {'null' if got is None else type(got).__name__}"
    else:  # pydantic's message names the rule (a bound, a pattern), not the input
        text = str(item["msg"]).replace("Input should be", "must be")
    return Problem(loc, kind, text)


def _interval(field: FieldInfo | None) -> str | None:
    """``(0, 100)`` / ``[1, 10]`` for a field bounded on both sides, else None."""
    if field is None:
        return None
    bounds = {
        type(rule).__name__: getattr(rule, type(rule).__name__.lower())
        for rule in field.metadata
        if type(rule).__name__ in ("Gt", "Ge", "Lt", "Le")
    }
    low = ("(", bounds["Gt"]) if "Gt" in bounds else ("[", bounds["Ge"]) if "Ge" in bounds else None
    high = (
        (")", bounds["Lt"]) if "Lt" in bounds else ("]", bounds["Le"]) if "Le" in bounds else None
    )
    if low is None or high is None:
        return None
    return f"{low[0]}{low[1]:g}, {high[1]:g}{high[0]}"


def _walk(model: type[BaseModel], loc: Loc) -> tuple[Loc, type[BaseModel], FieldInfo | None, Any]:
    """Follow ``loc`` through the model's annotations: the loc without pydantic's markers
    (dict-key and union-member tags), the model holding its last key, that key's field, and the
    annotation found there (None past an unknown key)."""
    keys: list[str | int] = []
    holder: type[BaseModel] = model
    field: FieldInfo | None = None
    node: Any = model
    for part in loc:
        node = _unwrap(node)
        if _is_union(node):  # pydantic tags the member it tried: not a key of the file
            continue
        if isinstance(node, type) and issubclass(node, BaseModel):
            holder = node
            field = next(
                (info for name, info in node.model_fields.items() if part in (name, info.alias)),
                None,
            )
            node = field.annotation if field is not None else None
        elif get_origin(node) in (list, tuple):
            node = get_args(node)[0]
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            node = None
        if part != _DICT_KEY:
            keys.append(part)
    return tuple(keys), holder, field, _unwrap(node)


def _unwrap(node: Any) -> Any:
    """The annotation without ``Annotated`` metadata and without ``| None``."""
    if get_origin(node) is Annotated:
        node = get_args(node)[0]
    if _is_union(node):
        members = [member for member in get_args(node) if member is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return node


def _is_union(node: Any) -> bool:
    return get_origin(node) in (typing.Union, types.UnionType)
