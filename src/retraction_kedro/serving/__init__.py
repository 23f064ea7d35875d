"""Chat completions from an OpenAI-compatible inference server (vLLM, `transformers serve`, others).

For every LLM call that needs no hooks into the model (the retraction judge, the answer
extractor): the model runs elsewhere, this package only talks HTTP through the ``openai``
client and never touches transformers.
"""

from .client import ChatServerError, complete_chats
from .settings import ChatServerSettings

__all__ = ["ChatServerError", "ChatServerSettings", "complete_chats"]
