"""The offline retraction judge: explicit cues and contradicting values, on the first line.

A continuation retracts the answer when, after the answer, it
1. uses an explicit retraction cue: it calls the answer wrong/incorrect/a mistake, apologizes,
   corrects itself ("actually", "correction", "I meant"), or negates the answer's link to the
   question ("is not", "isn't", "was not", "not a", "not in", "never", "does not", a sentence opening
   with "No") - unless the negation only
   qualifies something else ("not only", "not just", "no doubt", "not far from", "nothing");
2. or names a value that contradicts the question's constraint: it mentions another value of the
   testbed's constraint field (another country, another currency, another parent) and not the
   question's own value, e.g. "Lyon is a city in France." for "Name a city in Germany.".
Only the first line of the continuation is read, as in the paper.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from retraction_kedro.world import mentions_any

_CUES = re.compile(
    r"\b(?:incorrect|wrong|mistaken|mistake|error|apolog\w*|sorry|actually|correction|i\s+meant|"
    r"not\s+correct|not\s+right|oops|"
    r"is\s+not|isn't|was\s+not|wasn't|are\s+not|aren't|were\s+not|weren't|does\s+not|doesn't|did\s+not|didn't|"
    r"not\s+(?:an?|in|from|part\s+of|located|used|the|one)|never|no\s+longer|rather\s+than|instead)\b"
    r"|(?:^|[.?!]\s*)no\b",
    re.IGNORECASE,
)
_QUALIFIERS = re.compile(r"\b(?:not\s+only|not\s+just|no\s+doubt|not\s+far|not\s+to\s+be\s+confused)\b", re.IGNORECASE)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def has_retraction_cue(continuation: str) -> bool:
    line = _QUALIFIERS.sub(" ", first_line(continuation))
    return bool(_CUES.search(line))


def names_contradicting_value(continuation: str, expected: Iterable[str], others: Iterable[str]) -> bool:
    line = first_line(continuation)
    expected = list(expected)
    return mentions_any(line, others, distractors=expected) and not mentions_any(line, expected)


def rules_judge(continuation: str, expected: Iterable[str] = (), others: Iterable[str] = ()) -> bool:
    return has_retraction_cue(continuation) or names_contradicting_value(continuation, expected, others)
