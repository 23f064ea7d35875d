"""Answer-matching rules for the embedded offline world.

Every comparison between a model's answer and the names stored in the world
goes through :func:`normalize_name`. Its rules, applied in this order:

1. Accents are stripped: Unicode NFKD decomposition, combining marks dropped
   ("Zürich" -> "Zurich", "São Paulo" -> "Sao Paulo"). Latin letters that do
   not decompose are transliterated by a fixed character table
   (ø->o, ł->l, đ/ð->d, þ->th, æ->ae, œ->oe, ı->i, ß->ss), so "Łódź" -> "Lodz".
2. Case is folded (``str.casefold``).
3. ``&`` becomes the word ``and`` ("Trinidad & Tobago" == "Trinidad and Tobago").
4. Every character that is not a letter or a digit (punctuation, symbols,
   apostrophes, hyphens) becomes a space ("Guinea-Bissau" -> "guinea bissau",
   "Côte d'Ivoire" -> "cote d ivoire").
5. Runs of whitespace collapse to one space; the ends are trimmed.
6. One leading article "the " is dropped ("The Netherlands" -> "netherlands").

:func:`name_matches` decides whether a *short answer* names one of the valid
names (names plus alternate names):

* exact equality of the normalized forms; or
* a generic-affix rule applied to the **candidate only**: "city of X",
  "X city" and "city of X city" are reduced to "X", and accepted only if "X"
  is itself exactly (after normalization) one of the valid names. So
  "Panama City" is accepted when "Panamá" is valid, and "New York City" when
  "New York" is valid. Valid names are never shortened, so "Mexico" is *not*
  accepted just because "Mexico City" is valid. Nothing else is fuzzy: no
  substring, prefix, edit-distance or comma-qualifier ("Paris, Texas") matching.

:func:`mentions_any` decides whether a *free-text response* (e.g. to the
verification question "Which country is Lyon in?") mentions a name:

* the normalized name must occur as a whole run of tokens in the normalized
  text (token boundaries, so "Niger" is not mentioned by "Nigeria");
* the last token of the name may differ from the text by a plural "s"
  (only for tokens longer than 3 characters not ending in "ss"): "dollars"
  mentions "Dollar", "riel" mentions "Riels";
* an all-capital short acronym name (2-5 letters, dots ignored, e.g. "US",
  "USA", "UAE") is matched case-sensitively, so "let us see" does not mention
  "US" while "the U.S." and "USA" do;
* an occurrence that lies inside an occurrence of a *distractor* (a longer,
  different name such as "South Sudan" for "Sudan", or "Equatorial Guinea"
  for "Guinea") does not count. Distractors that normalize to one of the
  names themselves are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["strip_accents", "normalize_name", "name_matches", "mentions_any"]

_TRANSLIT = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "æ": "ae",
        "Æ": "Ae",
        "œ": "oe",
        "Œ": "Oe",
        "ı": "i",
        "ß": "ss",
    }
)

_DOTTED_ACRONYM = re.compile(r"\b(?:[A-Z]\.){2,}")

_CITY_PREFIX = "city of "
_CITY_SUFFIX = " city"


def strip_accents(text: str) -> str:
    """Rule 1 of :func:`normalize_name`: NFKD, drop combining marks, transliterate."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.translate(_TRANSLIT)


def normalize_name(text: str) -> str:
    """Normalize a name or a free text for comparison (rules in the module docstring)."""
    return _normalize(str(text))


@lru_cache(maxsize=1 << 18)
def _normalize(text: str) -> str:
    s = strip_accents(text).casefold()
    s = s.replace("&", " and ")
    s = "".join(ch if ch.isalnum() else " " for ch in s)
    s = " ".join(s.split())
    if s.startswith("the ") and len(s) > 4:
        s = s[4:]
    return s


def _affix_variants(norm: str) -> list[str]:
    """Candidate with generic "city of"/"city" affixes removed (never empty)."""
    variants = []
    s = norm
    if s.startswith(_CITY_PREFIX) and len(s) > len(_CITY_PREFIX):
        s = s[len(_CITY_PREFIX) :]
        variants.append(s)
    if s.endswith(_CITY_SUFFIX) and len(s) > len(_CITY_SUFFIX):
        variants.append(s[: -len(_CITY_SUFFIX)])
    if norm.endswith(_CITY_SUFFIX) and len(norm) > len(_CITY_SUFFIX):
        variants.append(norm[: -len(_CITY_SUFFIX)])
    return [v for v in variants if v]


def name_matches(candidate: str, valid_names: Iterable[str]) -> bool:
    """Whether ``candidate`` names one of ``valid_names`` (rules in the module docstring)."""
    cand = normalize_name(candidate)
    if not cand:
        return False
    valid = {normalize_name(v) for v in valid_names}
    valid.discard("")
    if cand in valid:
        return True
    return any(v in valid for v in _affix_variants(cand))


def _singular(token: str) -> str:
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def _spans(tokens: list[str], name_tokens: list[str]) -> list[tuple[int, int]]:
    """Token spans [start, end) where ``name_tokens`` occurs in ``tokens``."""
    k = len(name_tokens)
    if k == 0 or k > len(tokens):
        return []
    head, last = name_tokens[:-1], name_tokens[-1]
    last_sing = _singular(last)
    out = []
    for i in range(len(tokens) - k + 1):
        if tokens[i : i + k - 1] != head:
            continue
        t = tokens[i + k - 1]
        if t == last or _singular(t) == last_sing:
            out.append((i, i + k))
    return out


def _is_acronym(name: str) -> bool:
    s = name.strip().replace(".", "")
    return 2 <= len(s) <= 5 and s.isalpha() and s.isascii() and s.isupper()


def _text_tokens(text: str) -> tuple[list[str], list[str]]:
    """Case-preserving and casefolded tokens of a free text, aligned one to one."""
    s = _DOTTED_ACRONYM.sub(lambda m: m.group(0).replace(".", ""), str(text))
    s = strip_accents(s).replace("&", " and ")
    cased = "".join(ch if ch.isalnum() else " " for ch in s).split()
    return cased, [t.casefold() for t in cased]


def mentions_any(text: str, names: Iterable[str], distractors: Iterable[str] = ()) -> bool:
    """Whether ``text`` mentions any of ``names`` as whole words (rules in the module docstring)."""
    cased, tokens = _text_tokens(text)
    if not tokens:
        return False
    names = [n for n in names if normalize_name(n)]
    if not names:
        return False
    norm_names = {normalize_name(n) for n in names}
    blocked: list[tuple[int, int]] = []
    for d in distractors:
        nd = normalize_name(d)
        if nd and nd not in norm_names:
            blocked.extend(_spans(tokens, nd.split()))
    for n in names:
        if _is_acronym(n):
            acro = n.strip().replace(".", "")
            spans = [(i, i + 1) for i, t in enumerate(cased) if t == acro]
        else:
            spans = _spans(tokens, normalize_name(n).split())
        for start, end in spans:
            if not any(bs <= start and end <= be and (be - bs) > (end - start) for bs, be in blocked):
                return True
    return False
