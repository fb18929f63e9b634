"""Outcome rules: turn a 0–1000 anomaly score plus features into allow / review / block.

A policy is a YAML file (``resources/policy.yaml`` is the documented default) with

* ``bands`` — ordered, contiguous, non-overlapping score ranges covering 0–1000, each with an
  outcome. A band holds ``min <= score < max``; the last band also holds ``score == max`` (1000).
* ``hard_rules`` — named conditions over feature columns that force an outcome when it is
  *stricter* than the band's (``allow < review < block``). A condition is a list of clauses
  ``{feature, op, value}`` that must all hold; ops are the six comparisons. The language is
  deliberately this small — no ``eval``, no expressions — so a rules file edited by an analyst
  can never execute code, and every rule compiles to one vectorised polars predicate.

``load_policy`` validates everything up front and names the file, the key path and the problem,
because a typo in a rules file must fail the deploy, not silently allow traffic. Messages name
keys (cut short), never the file's values (``anomaly_pipeline.messages``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
import yaml

from anomaly_pipeline.messages import shown, yaml_problem

#: Outcomes from most lenient to strictest; a hard rule only ever moves an outcome up this list.
OUTCOMES: Final[tuple[str, ...]] = ("allow", "review", "block")
SCORE_MIN: Final[float] = 0.0
SCORE_MAX: Final[float] = 1000.0

_OPS: Final[dict[str, Callable[[pl.Expr, float], pl.Expr]]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_TOP_FIELDS: Final = ("version", "description", "bands", "hard_rules")
_BAND_FIELDS: Final = ("min", "max", "outcome", "description")
_RULE_FIELDS: Final = ("name", "description", "when", "outcome")
_CLAUSE_FIELDS: Final = ("feature", "op", "value")
POLICY_VERSION: Final[int] = 1


class PolicyError(ValueError):
    """A rules file is invalid; the message reads ``<source>: <key path>: <problem>``."""

    def __init__(self, source: str, key_path: str, problem: str) -> None:
        super().__init__(f"{source}: {key_path}: {problem}")
        self.source = source
        self.key_path = key_path
        self.problem = problem


@dataclass(frozen=True)
class Band:
    """Scores in ``[lower, upper)`` (``upper`` included for the top band) get ``outcome``."""

    lower: float
    upper: float
    outcome: str
    description: str = ""


@dataclass(frozen=True)
class Clause:
    """One comparison ``feature op value``."""

    feature: str
    op: str
    value: float

    def expr(self) -> pl.Expr:
        """The clause as a polars predicate (null features compare to null = no match)."""
        return _OPS[self.op](pl.col(self.feature), self.value)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:g}"


@dataclass(frozen=True)
class HardRule:
    """All ``clauses`` true → at least ``outcome``."""

    name: str
    clauses: tuple[Clause, ...]
    outcome: str
    description: str = ""

    def expr(self) -> pl.Expr:
        """True where every clause holds; rows with a null feature never match."""
        return pl.all_horizontal([c.expr() for c in self.clauses]).fill_null(False)


@dataclass(frozen=True)
class Policy:
    """A validated rules file; ``apply`` adds ``outcome`` and ``matched_rule`` to a frame."""

    bands: tuple[Band, ...]
    hard_rules: tuple[HardRule, ...]
    source: str = "<policy>"

    @property
    def features(self) -> list[str]:
        """Feature columns the hard rules read, in first-use order."""
        seen: dict[str, None] = {}
        for rule in self.hard_rules:
            for clause in rule.clauses:
                seen.setdefault(clause.feature)
        return list(seen)

    def apply(self, frame: pl.DataFrame, score_column: str = "score",
              flag_column: str | None = None) -> pl.DataFrame:
        """``frame`` plus ``outcome`` (allow/review/block) and ``matched_rule`` (nullable).

        ``outcome`` is the band of the score, raised to the strictest matching hard rule's
        outcome; ``matched_rule`` names that rule (the first in file order among equally strict
        ones) when it raised the outcome, and is null when the band decided.

        With ``flag_column`` (the model's flag), the flag is the edge between ``allow`` and the
        other bands, so band and flag never disagree: an unflagged row's band is ``allow``, a
        flagged row's is at least ``review``; the bands above grade flagged rows. The policy's
        band edges are fixed points while each model's flag threshold is its own, so without
        this a score between the two would be flagged yet allowed, or reviewed yet unflagged.
        """
        self._check_frame(frame, score_column)
        score = pl.col(score_column)
        band_rank = pl.lit(None, pl.Int8)
        for band in reversed(self.bands):
            upper_ok = score <= band.upper if band is self.bands[-1] else score < band.upper
            band_rank = pl.when((score >= band.lower) & upper_ok).then(
                pl.lit(_rank(band.outcome), pl.Int8)).otherwise(band_rank)
        if flag_column is not None:
            band_rank = pl.when(pl.col(flag_column)).then(
                pl.max_horizontal(band_rank, pl.lit(_rank("review"), pl.Int8))
            ).otherwise(pl.lit(_rank("allow"), pl.Int8))
        # strictest rules first, file order within equal strictness: the first match wins
        ordered = sorted(self.hard_rules, key=lambda r: -_rank(r.outcome))
        rule_rank: pl.Expr = pl.lit(-1, pl.Int8)
        rule_name: pl.Expr = pl.lit(None, pl.String)
        for rule in reversed(ordered):
            matched = rule.expr()
            rule_rank = pl.when(matched).then(pl.lit(_rank(rule.outcome), pl.Int8)) \
                .otherwise(rule_rank)
            rule_name = pl.when(matched).then(pl.lit(rule.name)).otherwise(rule_name)
        return (
            frame.with_columns(_band_rank=band_rank, _rule_rank=rule_rank, _rule_name=rule_name)
            .with_columns(
                outcome=pl.max_horizontal("_band_rank", "_rule_rank")
                .replace_strict(list(range(len(OUTCOMES))), list(OUTCOMES),
                                return_dtype=pl.String),
                matched_rule=pl.when(pl.col("_rule_rank") > pl.col("_band_rank"))
                .then(pl.col("_rule_name")).otherwise(pl.lit(None, pl.String)),
            )
            .drop("_band_rank", "_rule_rank", "_rule_name")
        )

    def _check_frame(self, frame: pl.DataFrame, score_column: str) -> None:
        missing = [c for c in (score_column, *self.features) if c not in frame.columns]
        if missing:
            raise ValueError(f"policy {self.source} needs column(s) {missing} that the frame "
                             f"lacks; it has {frame.columns}")
        score = frame.get_column(score_column)
        if not score.dtype.is_numeric():
            raise ValueError(f"column {score_column!r} must be numeric points (0–1000), "
                             f"got {score.dtype}")
        value = pl.col(score_column).cast(pl.Float64)
        bad = frame.filter(value.is_null() | value.is_nan() | (value < SCORE_MIN)
                           | (value > SCORE_MAX))
        if bad.height:
            examples = bad.get_column(score_column).head(3).to_list()
            raise ValueError(f"column {score_column!r} must be a number in "
                             f"[{SCORE_MIN:g}, {SCORE_MAX:g}]; {bad.height} row(s) are null, NaN "
                             f"or out of range, e.g. {examples}")


def load_policy(path: str | Path, feature_names: Sequence[str] | None = None) -> Policy:
    """Read and validate a YAML rules file.

    ``feature_names``, when given (normally ``FEATURE_COLUMNS``), makes a rule over an unknown
    feature an error at load time instead of at the first scoring run.
    """
    path = Path(path)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PolicyError(source, "<file>", "file not found") from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, "<file>", yaml_problem(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(source, "<file>", f"unreadable ({type(exc).__name__})") from None
    return parse_policy(data, source=source, feature_names=feature_names)


def parse_policy(data: Any, source: str = "<policy>",
                 feature_names: Sequence[str] | None = None) -> Policy:
    """Validate an already-parsed rules document (see ``load_policy``)."""
    top = _mapping(data, source, "<root>", _TOP_FIELDS, required=("bands",))
    version = top.get("version", POLICY_VERSION)
    if version != POLICY_VERSION:
        raise PolicyError(source, "version", f"unsupported version; this code reads version "
                                             f"{POLICY_VERSION}")
    bands = _parse_bands(top["bands"], source)
    rules = _parse_rules(top.get("hard_rules") or [], source,
                         None if feature_names is None else frozenset(feature_names))
    return Policy(bands=bands, hard_rules=rules, source=source)


def _parse_bands(raw: Any, source: str) -> tuple[Band, ...]:
    """Parse the bands, then check them in the order a reader would fix them: order first
    (a misordered list also looks like gaps and overlaps), then overlaps, holes and coverage."""
    if not isinstance(raw, list) or not raw:
        raise PolicyError(source, "bands", "must be a non-empty list of {min, max, outcome}")
    bands: list[Band] = []
    for i, item in enumerate(raw):
        where = f"bands[{i}]"
        entry = _mapping(item, source, where, _BAND_FIELDS, required=("min", "max", "outcome"))
        lower = _number(entry["min"], source, f"{where}.min")
        upper = _number(entry["max"], source, f"{where}.max")
        outcome = _outcome(entry["outcome"], source, f"{where}.outcome")
        if not lower < upper:
            raise PolicyError(source, where, f"min {lower:g} must be below max {upper:g}")
        bands.append(Band(lower, upper, outcome, str(entry.get("description", ""))))
    for i in range(1, len(bands)):
        if bands[i].lower < bands[i - 1].lower:
            raise PolicyError(source, f"bands[{i}].min",
                              f"bands are out of order: {bands[i].lower:g} is below "
                              f"bands[{i - 1}].min {bands[i - 1].lower:g}; list them by "
                              "increasing score")
    if bands[0].lower != SCORE_MIN:
        raise PolicyError(source, "bands[0].min", f"the first band must start at {SCORE_MIN:g} "
                                                  f"to cover 0–1000, got {bands[0].lower:g}")
    for i in range(1, len(bands)):
        prev, band = bands[i - 1], bands[i]
        if band.lower < prev.upper:
            raise PolicyError(source, f"bands[{i}].min",
                              f"overlaps bands[{i - 1}] ({prev.lower:g}–{prev.upper:g}); "
                              f"it must start at {prev.upper:g}")
        if band.lower > prev.upper:
            raise PolicyError(source, f"bands[{i}].min",
                              f"gap between {prev.upper:g} and {band.lower:g}: bands must "
                              "cover 0–1000 without holes")
        if _rank(band.outcome) < _rank(prev.outcome):
            raise PolicyError(source, f"bands[{i}].outcome",
                              f"{band.outcome!r} is more lenient than the lower band's "
                              f"{prev.outcome!r}; a higher score must never relax the outcome")
    if bands[-1].upper != SCORE_MAX:
        raise PolicyError(source, f"bands[{len(bands) - 1}].max",
                          f"the last band must end at {SCORE_MAX:g} to cover 0–1000, "
                          f"got {bands[-1].upper:g}")
    return tuple(bands)


def _parse_rules(raw: Any, source: str, known: frozenset[str] | None) -> tuple[HardRule, ...]:
    if not isinstance(raw, list):
        raise PolicyError(source, "hard_rules", "must be a list of {name, when, outcome}")
    rules: list[HardRule] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        where = f"hard_rules[{i}]"
        entry = _mapping(item, source, where, _RULE_FIELDS, required=("name", "when", "outcome"))
        name = entry["name"]
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(source, f"{where}.name", "must be a non-empty string")
        if name in names:
            raise PolicyError(source, f"{where}.name", "duplicate rule name")
        names.add(name)
        when = entry["when"]
        if not isinstance(when, list) or not when:
            raise PolicyError(source, f"{where}.when",
                              "must be a non-empty list of {feature, op, value} clauses (ANDed)")
        clauses = tuple(_parse_clause(c, source, f"{where}.when[{j}]", known)
                        for j, c in enumerate(when))
        rules.append(HardRule(name, clauses, _outcome(entry["outcome"], source,
                                                      f"{where}.outcome"),
                              str(entry.get("description", ""))))
    return tuple(rules)


def _parse_clause(raw: Any, source: str, where: str, known: frozenset[str] | None) -> Clause:
    entry = _mapping(raw, source, where, _CLAUSE_FIELDS, required=_CLAUSE_FIELDS)
    feature = entry["feature"]
    if not isinstance(feature, str) or not feature:
        raise PolicyError(source, f"{where}.feature", "must be a feature column name")
    if known is not None and feature not in known:
        raise PolicyError(source, f"{where}.feature", "unknown feature (not a column of "
                                                      "user_day_features)")
    op = entry["op"]
    if op not in _OPS:
        raise PolicyError(source, f"{where}.op", f"bad op; use one of {list(_OPS)}")
    return Clause(feature, op, _number(entry["value"], source, f"{where}.value"))


def _mapping(raw: Any, source: str, where: str, allowed: Sequence[str],
             required: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PolicyError(source, where, f"must be a mapping, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise PolicyError(source, _child(where, unknown[0]),
                          f"unknown field (allowed: {', '.join(allowed)})")
    missing = [k for k in required if k not in raw]
    if missing:
        raise PolicyError(source, _child(where, missing[0]), "required field is missing")
    return raw


def _child(where: str, key: Any) -> str:
    """Key path of ``key`` inside ``where`` (top-level keys have no prefix)."""
    return shown(key) if where == "<root>" else f"{where}.{shown(key)}"


def _number(raw: Any, source: str, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw:
        raise PolicyError(source, where, f"must be a number, got {type(raw).__name__}")
    return float(raw)


def _outcome(raw: Any, source: str, where: str) -> str:
    if raw not in OUTCOMES:
        raise PolicyError(source, where, f"unknown outcome; use one of {list(OUTCOMES)}")
    return str(raw)


def _rank(outcome: str) -> int:
    return OUTCOMES.index(outcome)
