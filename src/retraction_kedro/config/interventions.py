"""The ``interventions`` parameter group: named configurations and the steering sweep.

Layers are given as fractions of depth (comparable across a 30-, 32- or 80-layer model) or as
explicit layer numbers; a band that falls outside the model's layers fails in the preflight,
where the model's depth is known (``resolve``).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from .parameters import Parameters

Kind = Literal["none", "steer", "ablate", "value_patch", "attention_patch"]
Direction = Literal["mean_difference", "probe"]
Scale = Literal["raw", "relative"]


class LayerBand(Parameters):
    """``{from_fraction, to_fraction}`` of depth, or ``{first, last}`` layer numbers (both inclusive)."""

    from_fraction: float | None = Field(None, ge=0, le=1)
    to_fraction: float | None = Field(None, ge=0, le=1)
    first: int | None = Field(None, ge=0)
    last: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        fractions = (self.from_fraction, self.to_fraction)
        layers = (self.first, self.last)
        if None in fractions and None in layers or (None not in fractions and any(v is not None for v in layers)):
            raise ValueError("give either from_fraction and to_fraction, or first and last")
        low, high = fractions if None not in fractions else layers
        if low > high:
            raise ValueError(f"the band starts after it ends ({low} > {high})")
        return self

    def resolve(self, num_layers: int) -> list[int]:
        """Layer numbers of a model with ``num_layers`` decoder layers (fractions map onto 0 .. num_layers - 1)."""
        if self.first is not None:
            if self.last >= num_layers:
                raise ValueError(f"layers {self.first}-{self.last} lie outside the model's {num_layers} layers (0-{num_layers - 1})")
            return list(range(self.first, self.last + 1))
        first, last = round(self.from_fraction * (num_layers - 1)), round(self.to_fraction * (num_layers - 1))
        return list(range(first, last + 1))

    def label(self) -> str:
        if self.first is not None:
            return f"{self.first}-{self.last}"
        return f"{self.from_fraction:g}-{self.to_fraction:g}"


class SteeringSetting(Parameters):
    """Where and how hard to steer: a band, a signed alpha, its scale, the direction's source.

    scale ``raw``: ``alpha * v`` with v the direction as computed (the paper's convention).
    scale ``relative``: ``alpha * |h| * v / |v|`` with |h| the layer's mean residual-stream norm on the
    truthfulness set, so alpha 0.1 adds a tenth of a typical residual norm on any model.
    direction ``probe``: each layer's belief-probe weights in the residual basis (``direction_layer``:
    one layer's direction at every layer of the band).
    """

    layers: LayerBand
    alpha: float
    scale: Scale = "raw"
    direction: Direction = "mean_difference"
    direction_layer: int | None = Field(None, ge=0)

    @property
    def name(self) -> str:
        """The sweep's name for this setting (its runs' ``configuration``)."""
        return f"{self.direction} {self.layers.label()} {self.alpha:+g} {self.scale}"

    @model_validator(mode="after")
    def _raw_needs_mean_difference(self) -> Self:
        if self.scale == "raw" and self.direction == "probe":
            raise ValueError("a probe direction has no natural length: use scale relative")
        return self


class InterventionConfig(Parameters):
    """One named run of the continuation set under an intervention.

    none: the unsteered run (one per suffix; compared with every other run of that suffix).
    steer / ablate: add alpha along the direction / remove the component along it, after each layer
    of the band, at prompt ``position`` (-1: the last prompt token; with the suffix " is", -2 is the
    answer's last token). ``from_sweep``: band, alpha, scale and direction chosen by the sweep, with
    this run's ``sign``. value_patch / attention_patch: the value vectors at ``position`` / the
    attention weights of the query at ``position`` recorded in run ``source``, written into the
    unsteered run (``top_k_heads``: only the heads whose weights changed most).
    """

    name: str
    kind: Kind
    steering: SteeringSetting | None = None
    from_sweep: bool = False
    sign: Literal[-1, 1] | None = None
    position: int = Field(-1, lt=0)
    every_token: bool = False
    suffix: str = ""
    source: str | None = None
    top_k_heads: int | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier() or value != value.lower():
            raise ValueError("must be a lower-case identifier (it names MLflow metrics: <testbed>.<name>.<metric>)")
        return value

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Self:
        steers = self.kind in ("steer", "ablate")
        if steers and (self.steering is None) == (not self.from_sweep):
            raise ValueError(f"{self.kind} needs exactly one of steering and from_sweep")
        if self.from_sweep and self.sign is None and self.kind == "steer":
            raise ValueError("from_sweep steering needs a sign (-1 toward 'wrong', 1 toward 'correct')")
        if not steers and (self.steering or self.from_sweep or self.sign):
            raise ValueError(f"{self.kind} takes no steering, from_sweep or sign")
        if (self.source is not None) != (self.kind in ("value_patch", "attention_patch")):
            raise ValueError("source is needed by value_patch and attention_patch, and only by them")
        if self.top_k_heads is not None and self.kind != "attention_patch":
            raise ValueError("top_k_heads applies to attention_patch only")
        return self


class SweepParameters(Parameters):
    """The dose-response sweep: every band x direction x sign climbs the alphas in turn, on ``split``.

    A ladder (one band, direction and sign) stops after the first alpha whose well-formed share falls below
    ``min_well_formed`` x the unsteered run's: the choice rule takes a setting only when it and every smaller
    alpha of its ladder keep that bound, so the alphas above cannot be chosen, and are not run.

    The first band of the first direction (both signs) runs first; the rest of the grid runs only where that
    group leaves the question open: its own choice (the rule, among its settings) does not raise retraction
    recall over the unsteered run with an exact McNemar p below ``settled_p``. ``settled_p: null``: the whole
    grid at once."""

    split: Literal["train", "test"] = "train"
    max_examples: int | None = Field(None, ge=1)  # a seeded sample of the split, for time
    seed: int = 0
    bands: list[LayerBand] = Field(min_length=1)
    alphas: list[float] = Field(min_length=1)
    scale: Scale = "relative"
    directions: list[Direction] = Field(["mean_difference"], min_length=1)
    direction_layer: int | None = Field(None, ge=0)
    min_well_formed: float = Field(0.9, ge=0, le=1)  # the choice keeps settings this well-formed, relative to unsteered
    settled_p: float | None = Field(0.05, gt=0, lt=1)  # the first group settles the question below this p (null: full grid)

    @model_validator(mode="after")
    def _probe_needs_relative(self) -> Self:
        if "probe" in self.directions and self.scale == "raw":
            raise ValueError("a probe direction has no natural length: sweep it with scale relative")
        return self

    @field_validator("alphas")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(alpha <= 0 for alpha in value):
            raise ValueError("alphas are magnitudes (> 0); both signs run")
        return sorted(value)

    def ladders(self) -> list[list[SteeringSetting]]:
        """Per direction, band and sign, its settings by ascending |alpha|."""
        return [
            [SteeringSetting(layers=band, alpha=sign * alpha, scale=self.scale, direction=direction,
                             direction_layer=self.direction_layer) for alpha in self.alphas]  # fmt: skip
            for direction in self.directions
            for band in self.bands
            for sign in (-1, 1)
        ]

    def first_ladders(self) -> list[list[SteeringSetting]]:
        """The ladders that always run: the first direction's first band, both signs (every ladder without ``settled_p``)."""
        ladders = self.ladders()
        return ladders if self.settled_p is None else ladders[:2]

    def rest_ladders(self) -> list[list[SteeringSetting]]:
        """The ladders that run only where the first group leaves the question open."""
        return [] if self.settled_p is None else self.ladders()[2:]

    def settings(self) -> list[SteeringSetting]:
        """Every setting a full sweep would run, in the order that breaks the choice rule's ties."""
        return [
            SteeringSetting(layers=band, alpha=sign * alpha, scale=self.scale, direction=direction, direction_layer=self.direction_layer)
            for direction in self.directions
            for band in self.bands
            for alpha in self.alphas
            for sign in (-1, 1)
        ]


class InterventionParameters(Parameters):
    max_new_tokens: int = Field(128, ge=1)
    configurations: list[InterventionConfig] = Field(min_length=1)
    sweep: SweepParameters

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.configurations]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"configuration name {duplicate!r} is used twice")
        by_name = {c.name: c for c in self.configurations}
        for config in self.configurations:
            baselines = [c.name for c in self.configurations if c.kind == "none" and c.suffix == config.suffix]
            if len(baselines) != 1:
                raise ValueError(f"suffix {config.suffix!r} needs exactly one configuration of kind none (found {baselines})")
            if config.source is not None:
                source = by_name.get(config.source)
                if source is None or source.kind not in ("steer", "ablate") or source.suffix != config.suffix:
                    raise ValueError(f"{config.name}: source {config.source!r} must name a steer or ablate configuration with the same suffix")
        return self

    def baseline(self, suffix: str) -> InterventionConfig:
        return next(c for c in self.configurations if c.kind == "none" and c.suffix == suffix)
