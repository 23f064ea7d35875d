"""retraction_kedro: when do LLMs admit their mistakes? A Kedro reproduction of Yang & Jia (2025)."""

__version__ = "0.1.0"
