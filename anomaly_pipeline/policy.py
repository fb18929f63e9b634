"""Outcome rules: turn a 0–1000 anomaly score plus features into allow / review / block.

A policy is a YAML file (``resources/policy.yaml`` is the documented default) with

* ``bands`` — ordered, contiguous, non-overlapping score ranges covering 0–1000, each with an
  outcome. A band holds ``min <= score < max``; the last band also holds ``score == max`` (1000).
* ``hard_rules`` — named conditions over feature columns that force an outcome when it is
  *stricter* than the band's (``allow < review < block``). A condition is a list of clauses
  ``{feature, op, value}`` that must all hold; ops are the six comparisons. The language is
  deliberately this small — no ``eval``, no expressions — so a rules file edited by an analyst
  can never execute code, and every rule compiles to one vectorised polars predicate.

``load_policy`` validates everything up front (the pydantic model ``PolicyFile``: unknown keys
and strict types by the model, band coverage and unique rule names by its validators) and names
the file, the key path and the problem, because a typo in a rules file must fail the deploy, not
silently allow traffic. Messages name keys (cut short), never the file's values
(``anomaly_pipeline.config_model``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import polars as pl
import yaml
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from anomaly_pipeline.config_model import ConfigModel, KeyProblem, empty_when_null, problems
from anomaly_pipeline.messages import yaml_problem

Outcome = Literal["allow", "review", "block"]
#: Outcomes from most lenient to strictest; a hard rule only ever moves an outcome up this list.
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
Op = Literal["<", "<=", ">", ">=", "==", "!="]
_OPS: Final[dict[str, Callable[[pl.Expr, float], pl.Expr]]] = dict(
    zip(
        get_args(Op),
        (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne),
        strict=True,
    )
)
SCORE_MIN: Final[float] = 0.0
SCORE_MAX: Final[float] = 1000.0
POLICY_VERSION: Final = 1
#: How an invalid choice is named, by the key that holds it.
_CHOICE_WORDS: Final[dict[str, str]] = {
    "outcome": "unknown outcome",
    "op": "bad op",
    "version": "unsupported version",
}
Number = Annotated[float, Field(allow_inf_nan=False)]


class PolicyError(ValueError):
    """A rules file is invalid; the message reads ``<source>: <key path>: <problem>``."""

    def __init__(self, source: str, key_path: str, problem: str) -> None:
        super().__init__(f"{source}: {key_path}: {problem}")
        self.source = source
        self.key_path = key_path
        self.problem = problem


class Band(ConfigModel):
    """Scores in ``[lower, upper)`` (``upper`` included for the top band) get ``outcome``.
    The file names the edges ``min`` and ``max``."""

    lower: Number = Field(alias="min")
    upper: Number = Field(alias="max")
    outcome: Outcome
    description: str = ""

    @model_validator(mode="after")
    def _not_empty(self) -> Band:
        if not self.lower < self.upper:
            raise ValueError(f"min {self.lower:g} must be below max {self.upper:g}")
        return self


class Clause(ConfigModel):
    """One comparison ``feature op value``."""

    feature: str = Field(min_length=1)
    op: Op
    value: Number

    @field_validator("feature")
    @classmethod
    def _known_feature(cls, feature: str, info: ValidationInfo) -> str:
        """With ``feature_names`` in the validation context, a rule over a column the feature
        table lacks fails at load time instead of at the first scoring run."""
        known = (info.context or {}).get("feature_names")
        if known is not None and feature not in known:
            raise ValueError("unknown feature (not a column of user_day_features)")
        return feature

    def expr(self) -> pl.Expr:
        """The clause as a polars predicate (null features compare to null = no match)."""
        return _OPS[self.op](pl.col(self.feature), self.value)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:g}"


class HardRule(ConfigModel):
    """All ``clauses`` (the file's ``when``, ANDed) true → at least ``outcome``."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    description: str = ""
    clauses: tuple[Clause, ...] = Field(alias="when", min_length=1, strict=False)
    outcome: Outcome

    def expr(self) -> pl.Expr:
        """True where every clause holds; rows with a null feature never match."""
        return pl.all_horizontal([c.expr() for c in self.clauses]).fill_null(False)


class PolicyFile(ConfigModel):
    """The rules file as written; ``load_policy`` turns it into a ``Policy``."""

    version: Literal[1] = POLICY_VERSION
    description: str = ""
    bands: tuple[Band, ...] = Field(min_length=1, strict=False)
    hard_rules: Annotated[tuple[HardRule, ...], empty_when_null(())] = Field((), strict=False)

    @model_validator(mode="after")
    def _bands_cover_the_scale(self) -> PolicyFile:
        problem = _band_problem(self.bands)
        if problem is not None:
            raise KeyProblem(*problem)
        return self

    @model_validator(mode="after")
    def _rule_names_unique(self) -> PolicyFile:
        names = [rule.name for rule in self.hard_rules]
        repeated = next((i for i, name in enumerate(names) if name in names[:i]), None)
        if repeated is not None:
            raise KeyProblem(("hard_rules", repeated, "name"), "duplicate rule name")
        return self


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

    def apply(
        self, frame: pl.DataFrame, score_column: str = "score", flag_column: str | None = None
    ) -> pl.DataFrame:
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
            band_rank = (
                pl.when((score >= band.lower) & upper_ok)
                .then(pl.lit(_rank(band.outcome), pl.Int8))
                .otherwise(band_rank)
            )
        if flag_column is not None:
            band_rank = (
                pl.when(pl.col(flag_column))
                .then(pl.max_horizontal(band_rank, pl.lit(_rank("review"), pl.Int8)))
                .otherwise(pl.lit(_rank("allow"), pl.Int8))
            )
        # strictest rules first, file order within equal strictness: the first match wins
        ordered = sorted(self.hard_rules, key=lambda r: -_rank(r.outcome))
        rule_rank: pl.Expr = pl.lit(-1, pl.Int8)
        rule_name: pl.Expr = pl.lit(None, pl.String)
        for rule in reversed(ordered):
            matched = rule.expr()
            rule_rank = (
                pl.when(matched).then(pl.lit(_rank(rule.outcome), pl.Int8)).otherwise(rule_rank)
            )
            rule_name = pl.when(matched).then(pl.lit(rule.name)).otherwise(rule_name)
        return (
            frame.with_columns(_band_rank=band_rank, _rule_rank=rule_rank, _rule_name=rule_name)
            .with_columns(
                outcome=pl.max_horizontal("_band_rank", "_rule_rank").replace_strict(
                    list(range(len(OUTCOMES))), list(OUTCOMES), return_dtype=pl.String
                ),
                matched_rule=pl.when(pl.col("_rule_rank") > pl.col("_band_rank"))
                .then(pl.col("_rule_name"))
                .otherwise(pl.lit(None, pl.String)),
            )
            .drop("_band_rank", "_rule_rank", "_rule_name")
        )

    def _check_frame(self, frame: pl.DataFrame, score_column: str) -> None:
        missing = [c for c in (score_column, *self.features) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"policy {self.source} needs column(s) {missing} that the frame "
                f"lacks; it has {frame.columns}"
            )
        score = frame.get_column(score_column)
        if not score.dtype.is_numeric():
            raise ValueError(
                f"column {score_column!r} must be numeric points (0–1000), got {score.dtype}"
            )
        value = pl.col(score_column).cast(pl.Float64)
        bad = frame.filter(
            value.is_null() | value.is_nan() | (value < SCORE_MIN) | (value > SCORE_MAX)
        )
        if bad.height:
            examples = bad.get_column(score_column).head(3).to_list()
            raise ValueError(
                f"column {score_column!r} must be a number in "
                f"[{SCORE_MIN:g}, {SCORE_MAX:g}]; {bad.height} row(s) are null, NaN "
                f"or out of range, e.g. {examples}"
            )


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


def parse_policy(
    data: Any, source: str = "<policy>", feature_names: Sequence[str] | None = None
) -> Policy:
    """Validate an already-parsed rules document (see ``load_policy``); ``PolicyError`` names
    the first problem, an unknown key before anything else."""
    context = {"feature_names": None if feature_names is None else frozenset(feature_names)}
    try:
        document = PolicyFile.model_validate(data, context=context)
    except ValidationError as error:
        first = problems(error, PolicyFile)[0]
        text = first.text
        if first.kind == "literal_error":
            word = _CHOICE_WORDS.get(str(first.loc[-1]), "unknown value")
            text = f"{word}; use one of {list(first.choices)}"
        raise PolicyError(source, first.key_path, text) from None
    return Policy(bands=document.bands, hard_rules=document.hard_rules, source=source)


def _band_problem(bands: Sequence[Band]) -> tuple[tuple[str | int, ...], str] | None:
    """Where and why ``bands`` fail to cover 0–1000 in order, or None. Checked in the order a
    reader would fix them: order first (a misordered list also looks like gaps and overlaps),
    then the start, overlaps, holes, leniency and the end."""
    for i in range(1, len(bands)):
        if bands[i].lower < bands[i - 1].lower:
            return (
                ("bands", i, "min"),
                f"bands are out of order: {bands[i].lower:g} is below bands[{i - 1}].min "
                f"{bands[i - 1].lower:g}; list them by increasing score",
            )
    if bands[0].lower != SCORE_MIN:
        return (
            ("bands", 0, "min"),
            f"the first band must start at {SCORE_MIN:g} to cover 0–1000, got {bands[0].lower:g}",
        )
    for i in range(1, len(bands)):
        prev, band = bands[i - 1], bands[i]
        if band.lower < prev.upper:
            return (
                ("bands", i, "min"),
                f"overlaps bands[{i - 1}] ({prev.lower:g}–"
                f"{prev.upper:g}); it must start at {prev.upper:g}",
            )
        if band.lower > prev.upper:
            return (
                ("bands", i, "min"),
                f"gap between {prev.upper:g} and {band.lower:g}: "
                "bands must cover 0–1000 without holes",
            )
        if _rank(band.outcome) < _rank(prev.outcome):
            return (
                ("bands", i, "outcome"),
                f"{band.outcome!r} is more lenient than the lower band's {prev.outcome!r}; "
                "a higher score must never relax the outcome",
            )
    if bands[-1].upper != SCORE_MAX:
        return (
            ("bands", len(bands) - 1, "max"),
            f"the last band must end at {SCORE_MAX:g} to cover 0–1000, got {bands[-1].upper:g}",
        )
    return None


def _rank(outcome: str) -> int:
    return OUTCOMES.index(outcome)
