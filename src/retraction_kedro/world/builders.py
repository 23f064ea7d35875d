"""The embedded world's question sets by builder name: what a registry entry's ``source: {embedded: <name>}`` names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .geo import city_questions, currency_questions, truthfulness_questions, well_known_cities, well_known_currencies

Tables = tuple[list[dict], list[dict]]


@dataclass(frozen=True)
class EmbeddedBuilder:
    """``tables`` makes (train, test) from the ``world`` parameters; ``facts`` gives (subject, value)
    pairs for worked verification examples (testbeds only)."""

    tables: Callable[[dict[str, Any]], Tables]
    facts: Callable[[int, int], list[tuple[str, str]]] | None = None


TESTBED_BUILDERS = {
    "city_in_country": EmbeddedBuilder(
        lambda w: city_questions(w["seed"], w["min_city_population"], w["min_answers"], w["test_fraction"]), well_known_cities
    ),
    "country_by_currency": EmbeddedBuilder(lambda w: currency_questions(w["seed"], w["test_fraction"]), well_known_currencies),
}
TRUTHFULNESS_BUILDERS = {
    "country_facts": EmbeddedBuilder(
        lambda w: truthfulness_questions(w["seed"], w["test_fraction"], w["truthfulness_per_relation"], w["truthfulness_relations"])
    ),
}


def embedded_builder(name: str, truthfulness: bool = False) -> EmbeddedBuilder:
    builders = TRUTHFULNESS_BUILDERS if truthfulness else TESTBED_BUILDERS
    if name not in builders:
        kind = "truthfulness set" if truthfulness else "testbed"
        raise ValueError(f"source.embedded {name!r} is not an embedded {kind} builder; choose one of {sorted(builders)}")
    return builders[name]
