"""One rule that merges the gradient, span and lexical scores of an inference into one score map.

The rule (``CombineRule``, stored per model in its manifest with ``rule.to_dict()``):

1. Each side keeps only its positive, finite scores (the shares function pays nothing else anyway).
2. Each side is divided by its largest kept score and raised to an integer power (by repeated multiplication, so
   every platform rounds alike): the span and lexical sides to ``power``, the gradient side to ``gradient_power``
   (``None``: ``power`` too, the rule of manifests before it existed). A power above 1 sharpens a side, so the
   contribution that clearly explains the output keeps most of that side's mass instead of sharing it with every
   contribution that matches a little; power 1 keeps a side linear, i.e. its graded evidence (what LM-LDS
   measures: the gradient side is a first-order estimate of each contribution's effect, which sharpening throws
   away, while the span and lexical sides are matches whose sharpening picks the source that states the text).
3. Each side is then L1-normalised (``math.fsum`` over the keys in sorted order, so the result does not depend
   on dict order or platform and huge scores cannot overflow).
4. The combined score of a contribution is ``gradient_weight * g[c] + span_weight * s[c] + lexical_weight * l[c]``
   (a missing key counts 0), in float64; the result has sorted keys and only positive values.
5. A side with no positive score contributes nothing (it is not renormalised away): with weights 0.5 / 0.5 and
   no matching span, the result is half the normalised gradient scores, which gives the same shares as the
   gradient scores alone because ``contributor_shares`` is scale-invariant.

Defaults (``CombineRule()``, the rule of models whose manifest predates the lexical side): ``gradient_weight=0.5,
span_weight=0.5, lexical_weight=0, power=1``. The factory writes ``FACTORY_RULE`` into new manifests (chosen by
``benchmarks/lm_attribution.py``). Setting weights to 0 selects the other signals only. ``to_dict`` writes
``gradient_power`` only when it is set, so the rules of older manifests keep their exact bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from attribution_oracle.errors import UserError

FORMAT = "attribution-oracle/combine@1"


class CombineRuleError(UserError):
    """A combine rule with invalid weights or an unknown field."""


@dataclass(frozen=True)
class CombineRule:
    """Weights of the L1-normalised gradient and span scores (see the module docstring)."""

    gradient_weight: float = 0.5
    span_weight: float = 0.5
    lexical_weight: float = 0.0
    power: int = 1
    gradient_power: int | None = None

    def __post_init__(self) -> None:
        for name in ("power", "gradient_power"):
            value = getattr(self, name)
            if name == "gradient_power" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise CombineRuleError(f"{name} must be an integer in 1..64, got {value!r}")
        for name in ("gradient_weight", "span_weight", "lexical_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise CombineRuleError(f"{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.gradient_weight + self.span_weight + self.lexical_weight <= 0:
            raise CombineRuleError("at least one of gradient_weight, span_weight and lexical_weight must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for a model manifest."""
        data = asdict(self)
        if data["gradient_power"] is None:
            del data["gradient_power"]
        return {"format": FORMAT, **data}

    @property
    def gradient_exponent(self) -> int:
        """The power the gradient side is raised to: ``gradient_power``, else ``power``."""
        return self.power if self.gradient_power is None else self.gradient_power

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CombineRule:
        """Inverse of ``to_dict``; rejects unknown fields and other formats."""
        if not isinstance(data, Mapping):
            raise CombineRuleError(f"a combine rule must be a mapping, got {type(data).__name__}")
        fields = dict(data)
        fmt = fields.pop("format", FORMAT)
        if fmt != FORMAT:
            raise CombineRuleError(f"unknown combine rule format {fmt!r} (expected {FORMAT})")
        unknown = sorted(set(fields) - {"gradient_weight", "span_weight", "lexical_weight", "power", "gradient_power"})
        if unknown:
            raise CombineRuleError(f"unknown combine rule field(s): {', '.join(unknown)}")
        return cls(**fields)


def _power(value: float, power: int) -> float:
    out = 1.0
    base = value
    while power:
        if power & 1:
            out *= base
        base *= base
        power >>= 1
    return out


def _normalised(scores: Mapping[str, float], power: int = 1) -> dict[str, float]:
    kept = {}
    for key in sorted(scores):
        value = scores[key]
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            kept[key] = float(value)
    if not kept:
        return {}
    top = max(kept.values())  # scale first so that summing huge scores cannot overflow
    scaled = {k: _power(v / top, power) for k, v in kept.items()}
    scaled = {k: v for k, v in scaled.items() if v > 0}
    total = math.fsum(scaled.values())
    return {k: v / total for k, v in scaled.items()}


def combine(
    gradient: Mapping[str, float],
    span: Mapping[str, float],
    rule: CombineRule | None = None,
    lexical: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Combined per-contribution scores (sorted keys, float64, positive only) by ``rule`` (default 0.5/0.5)."""
    rule = rule or CombineRule()
    g, s = _normalised(gradient, rule.gradient_exponent), _normalised(span, rule.power)
    lex = _normalised(lexical or {}, rule.power)
    out = {}
    for key in sorted(set(g) | set(s) | set(lex)):
        value = (
            rule.gradient_weight * g.get(key, 0.0)
            + rule.span_weight * s.get(key, 0.0)
            + rule.lexical_weight * lex.get(key, 0.0)
        )
        if value > 0:
            out[key] = value
    return out


#: The rule the ModelFactory writes into new manifests (chosen by ``benchmarks/lm_attribution.py``): the span and
#: lexical sides sharpened (power 16), which pays the contribution that states the fact (author median share >= 0.6
#: of the pool), and the gradient side linear, which keeps its graded evidence (LM-LDS). Session 4's rule was
#: ``0.2/0.2/0.6`` with power 8 on every side (see BENCHMARKS.md, "Issue 12, session 5").
FACTORY_RULE = CombineRule(gradient_weight=0.2, span_weight=0.2, lexical_weight=0.6, power=16, gradient_power=1)
