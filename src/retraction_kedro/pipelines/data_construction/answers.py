"""Rule-based extraction of the first answer in a free response, and idk/invalid tagging.

Rules, in order:
1. Only the first non-empty line counts; markdown emphasis, quotes and list markers are stripped.
2. A response that declines (\"I don't know\", \"I'm not sure\", \"unable to\", \"sorry\", ...) is ``idk``.
3. A leading courtesy (\"Sure!\", \"Certainly,\") and a leading place phrase (\"In Chad, ...\") are
   dropped; a description followed by the name in apposition (\"The capital of Thailand, Bangkok, is\")
   gives the name; a lead-in that describes the kind of answer in lower case before giving it
   (\"One city in Kenya is Nairobi\", \"The most notable example of a country using the Peso is
   actually Chile\") is reduced to what follows its verb; a name introduced as such (\"The city of Taipei
   is ...\", \"The city known as Seoul\", \"Cities like Sydney, Melbourne\") is taken from after the
   introduction. A response opening with \"Here\"/\"There\" is ``invalid``.
4. The answer ends at the first sentence or clause boundary (\". \", \",\", \";\", \":\", \"(\", \" - \")
   or the first verb or relative word that starts a description (\" is \", \" was \", \" uses \", \" who \", ...),
   or \" in \" before a capitalized word (\"Yurtulkale in Uzbekistan\").
5. The result is ``invalid`` when empty, outside [min_words, max_words] words, without letters, a
   word for a kind of answer (\"Cities\", \"Capital City\"), or not written as a name: every word must
   start with a capital letter or digit, except particles that names contain (of, and, de, la, von, bin, ...).

Every response that yields no answer carries the rule that rejected it (``REJECTIONS``), so construction
counts each rule's rejections; ``constraint_value`` is applied by the node, which knows the testbed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

STATUS_OK, STATUS_IDK, STATUS_INVALID = "ok", "idk", "invalid"
#: why a response gave no answer, by rule, in the order the rules apply (``idk`` is the only one with status idk)
REJECTIONS = (
    "idk",  # the response declines
    "pointer",  # it opens with "Here"/"There", pointing at an answer it does not give
    "extractor_none",  # the LLM extractor found no answer (or its request failed)
    "empty",  # nothing is left after the rules cut the line
    "no_letters",
    "too_few_words",  # fewer than the testbed's min_name_words
    "too_many_words",  # more than its max_name_words
    "kind_word",  # a word for a kind of answer ("Cities")
    "not_a_name",  # not capitalized as a name
    "constraint_value",  # a value of the testbed's constraint ("Kenya" for a city), unless right for its question
)


class Reading(NamedTuple):
    """One response read: the answer name (None when rejected), its status, and the rule that rejected it."""

    name: str | None
    status: str
    reason: str | None


def _rejected(reason: str) -> Reading:
    return Reading(None, STATUS_IDK if reason == "idk" else STATUS_INVALID, reason)

_DECLINE = re.compile(
    r"\b(i\s+(?:do\s+not|don't|cannot|can't|am\s+not\s+(?:sure|able|aware)|am\s+unable|have\s+no)|"
    r"i'm\s+(?:not\s+sure|unable|sorry|not\s+aware)|not\s+sure|no\s+(?:information|record|data)|"
    r"unable\s+to|sorry|as\s+an\s+ai|there\s+(?:is|are)\s+no)\b",
    re.IGNORECASE,
)
_COURTESY = re.compile(r"^(?:sure|certainly|of\s+course|yes|okay|ok|absolutely)\b[!,.:]*\s*", re.IGNORECASE)
_LEAD_IN = re.compile(  # "One city in Kenya is ...", "The most notable example of ... is actually ..."
    r"^(?:one|an?|the|some|another)\s+(?=(?-i:[a-z]))(?:\S+\s+){0,14}?(?:is|are|would\s+be|could\s+be|was)\s+"
    r"(?:(?:actually|probably|definitely|certainly|indeed|undoubtedly|arguably)\s+)?(?P<rest>.+)$",
    re.IGNORECASE,
)
# "The city of Taipei is ...", "The country of Monaco", "Cities like Sydney, Melbourne": the name that follows
_NAMED = re.compile(
    r"^(?:the\s+)?(?:(?:city|town|country|nation)\s+(?:of|called|named|(?:that\s+is\s+)?known\s+as)|(?:cities|towns|countries)\s+(?:like|such\s+as))\s+"
    r"(?=(?-i:[A-Z]))(?P<rest>.+)$",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(
    r"(?:(?<!(?-i:[A-Z][a-z]))\.\s|\.$|,|;|:|\(|\s[-–—]\s|!|\?|\s(?:is|was|are|were|uses|use|has|had|would|could|can|who|which|that|"
    r"located|born|known)\b|\sin\s(?=(?-i:[A-Z])))",
    re.IGNORECASE,
)
_PLACE_PHRASE = re.compile(r"^in\s+[^,]{1,60},\s*", re.IGNORECASE)
_APPOSITION = re.compile(r"^(?:the|an?)\s+[^,]{1,60},\s*(?P<name>[^,]{1,60}),", re.IGNORECASE)
_POINTER = re.compile(r"^(?:here|there)\b", re.IGNORECASE)
_PARTICLES = {
    "of", "and", "de", "del", "della", "di", "da", "do", "dos", "das", "du", "des", "la", "le", "les", "el",
    "al", "von", "van", "der", "den", "bin", "bint", "ibn", "y", "e", "upon", "on", "the", "am", "an", "im",
}  # fmt: skip
_GENERIC = {"city", "cities", "town", "towns", "capital", "capital city", "country", "countries", "currency"}  # kinds, not names
_DECORATION = re.compile(r"^[\s\"'“”‘’*#>`_-]*(?:\d+[.)]\s*)?|[\s\"'“”‘’*`_]+$")


def first_line(response: str) -> str:
    for line in response.splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_answer(response: str, min_words: int = 1, max_words: int = 6) -> Reading:
    """The first answer of a free response, or the rule that rejected it."""
    line = _DECORATION.sub("", first_line(response)).replace("**", "")
    if _DECLINE.search(line):
        return _rejected("idk")
    line = _PLACE_PHRASE.sub("", _COURTESY.sub("", line))
    if _POINTER.match(line):
        return _rejected("pointer")
    named = _NAMED.match(line)
    apposition = _APPOSITION.match(line)
    lead_in = _LEAD_IN.match(line)
    if named:
        line = named.group("rest")
    elif apposition:
        line = apposition.group("name")
    elif lead_in:
        line = lead_in.group("rest")
    cut = _BOUNDARY.search(line)
    name = _DECORATION.sub("", line[: cut.start()] if cut else line).strip()
    words = name.split()
    if not name:
        return _rejected("empty")
    if not re.search(r"[^\W\d_]", name):
        return _rejected("no_letters")
    if len(words) < min_words:
        return _rejected("too_few_words")
    if len(words) > max_words:
        return _rejected("too_many_words")
    if name.lower() in _GENERIC:
        return _rejected("kind_word")
    if not all(w[0].isupper() or w[0].isdigit() or w.lower() in _PARTICLES for w in words):
        return _rejected("not_a_name")
    return Reading(name, STATUS_OK, None)


def extract_answer(response: str, min_words: int = 1, max_words: int = 6) -> tuple[str | None, str]:
    """(answer name or None, status) for one free response."""
    return read_answer(response, min_words, max_words)[:2]


EXTRACTOR_INSTRUCTIONS = (
    "You read a question and a reply to it. Copy the first name that the reply gives as its answer, "
    "exactly as written, and nothing else. If the reply gives no answer, write NONE."
)


def extractor_messages(question: str, response: str) -> list[dict[str, str]]:
    """The optional LLM extractor's prompt (our own wording); its output goes through ``extract_answer``."""
    return [
        {"role": "system", "content": EXTRACTOR_INSTRUCTIONS},
        {"role": "user", "content": f"Question: {question}\nReply: {first_line(response)}"},
    ]


def read_llm_answer(output: str, response: str, min_words: int = 1, max_words: int = 6) -> Reading:
    """An LLM-extracted answer read by the same rules; declines still come from the response itself."""
    if _DECLINE.search(first_line(response)):
        return _rejected("idk")
    if first_line(output).strip().upper().startswith("NONE"):
        return _rejected("extractor_none")
    return read_answer(output, min_words, max_words)


def read_extraction(output: str, response: str, min_words: int = 1, max_words: int = 6) -> tuple[str | None, str]:
    """(answer name or None, status) of an LLM-extracted answer."""
    return read_llm_answer(output, response, min_words, max_words)[:2]
