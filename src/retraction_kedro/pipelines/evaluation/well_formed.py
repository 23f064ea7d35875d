"""Whether a continuation is still text a judge can read: the sweep's measure of where steering breaks it.

A continuation's first line (what the judge reads) is well-formed when
1. it holds at least one word of letters;
2. it is written in the Latin script: at least 90% of its letters are Latin (the study's prompts are
   English, and strong steering drifts into other scripts);
3. it does not degenerate into repetition: no word three times in a row, and on lines of six words or
   more, at least half the words are distinct.
It says nothing of whether the text is true, or retracts.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_LATIN_SHARE = 0.9
MIN_DISTINCT_SHARE = 0.5
MAX_RUN = 3


def _latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("LATIN" in unicodedata.name(c, "") for c in letters) / len(letters) if letters else 0.0


def well_formed(continuation: str) -> bool:
    line = continuation.split("\n", 1)[0]
    words = [w.lower() for w in _WORD.findall(line)]
    if not words or _latin_share(line) < MIN_LATIN_SHARE:
        return False
    if any(words[i : i + MAX_RUN] == [words[i]] * MAX_RUN for i in range(len(words) - MAX_RUN + 1)):
        return False
    return len(words) < 6 or len(set(words)) / len(words) >= MIN_DISTINCT_SHARE
