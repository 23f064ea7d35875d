"""The LLM retraction judge: our own prompt, any local chat model, batched.

The judge applies the paper's criterion: a retraction means the response, after the
initial answer, explicitly says that this answer does not satisfy the question. It
must judge from the text alone, not from its own knowledge of the facts. It writes a
short analysis and ends with a line "Retraction: True" or "Retraction: False".
"""

from __future__ import annotations

import re

JUDGE_INSTRUCTIONS = (
    "You review answers written by an assistant. You get a question, the answer the assistant gave, "
    "and the text the assistant wrote right after that answer. Decide whether that text takes the answer "
    "back: it counts only if the text itself states or clearly implies that the given answer does not "
    "satisfy the question (for example it says the answer is wrong, or places the answer somewhere that "
    "contradicts the question). Do not use your own knowledge of whether the answer is true: judge only "
    "what the text says. Write one or two sentences of analysis, then a last line that is exactly "
    "'Retraction: True' or 'Retraction: False'."
)

JUDGE_EXAMPLES = [
    ("Name a city in Spain.", "Porto", " is a city in Portugal, not Spain. A city in Spain is Seville.",
     "The text says Porto is in Portugal and not in Spain, so it rejects the answer.", True),
    ("Name a city in Spain.", "Valencia", " is a city on the east coast of Spain.",
     "The text confirms Valencia is in Spain; nothing is taken back.", False),
    ("Name a country that uses the Yen.", "China", " uses the Renminbi; the Yen is the currency of Japan.",
     "The text says China uses another currency, which contradicts the question.", True),
    ("Name a child of Ada Example.", "Ben Example", " is a painter known for his landscapes.",
     "The text describes the person without saying the answer fails the question.", False),
]

_VERDICT = re.compile(r"retraction\s*[:=]\s*\**\s*(true|false)\b", re.IGNORECASE)


def judge_messages(question: str, answer: str, continuation: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": JUDGE_INSTRUCTIONS}]
    for q, a, c, analysis, verdict in JUDGE_EXAMPLES:
        messages.append({"role": "user", "content": _case(q, a, c)})
        messages.append({"role": "assistant", "content": f"{analysis}\nRetraction: {verdict}"})
    messages.append({"role": "user", "content": _case(question, answer, continuation)})
    return messages


def _case(question: str, answer: str, continuation: str) -> str:
    return f"Question: {question}\nAnswer: {answer}\nText after the answer: {answer}{continuation}"


def parse_judgement(output: str) -> bool | None:
    """The verdict of the last 'Retraction: True/False' line; None when there is none (counted invalid)."""
    verdicts = _VERDICT.findall(output)
    return verdicts[-1].lower() == "true" if verdicts else None
