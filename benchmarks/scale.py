"""The project's mechanics at 8B scale without a download: Llama-3.1-8B's architecture with random weights.

``--scale full`` builds the model from Llama-3.1-8B's config (32 layers, hidden 4096, 32 heads, 8 KV heads,
MLP 14336, vocabulary 128256), directly on the device in the chosen dtype (bfloat16 on CUDA: the 16 GB of
weights never pass through the CPU). ``--scale small`` (the default without a GPU) divides every width and the
depth by 8 and keeps the proportions: 4 layers, hidden 512, 8 heads and 2 KV heads (4 query heads per KV head,
as the 8B), MLP 1792 (3.5x hidden), vocabulary 16032; each matrix is 1/64 of the 8B's, and head size is 64,
not 128. ``--scale deep`` keeps the 8B's 32 layers at hidden 128: a step's arithmetic is then small, and what
the CPU measures of each decoding path (``--decodings loop,static,compiled``) is mostly per-step overhead
(Python, kernel launches), the part a GPU's CUDA graphs remove. Random weights cost what trained ones cost: the same matrices, the same tokens.

A random model needs token ids, and the project's functions take prompt strings and a chat template, so the
tokenizer is built here: byte-level BPE trained on the benchmark's own prompts (so a word is about one token,
as in a 128k vocabulary), a Llama-3-style chat template with a default system turn, and unused tokens up to
the config's vocabulary, so every id the LM head can pick decodes. The prompts are the runtime benchmark's
continuation prompts (``workloads.continuation_prompts``): 45-62 tokens, a shared system turn.

Measured through ``retraction_kedro.lm``, the variants alternating within each repeat, each the median of
``--repeats`` runs (min, max) after a warm-up:
  - capture (all layers, last prompt token) in examples/s, at batch 1 and batched, same prompts;
  - greedy generation forced to exactly ``--new-tokens`` tokens per prompt, tokens/s at batch 1 and batched;
  - steering overhead: batched generation steered (Llama's band 6-14 of 32 layers, as a fraction of depth) at
    the prompt only and at every token, over unsteered, per repeat;
  - peak memory of each run: CUDA's max allocated bytes, or on the CPU the process's peak resident set
    (VmHWM, reset per run through /proc/self/clear_refs), each also above the level at the run's start.
FLOPs count the work that ran (``measure.ModelCost``), against a matmul peak in the model's dtype measured
at the start and end of the same run. Writes data/08_reporting/benchmarks/scale_<scale>.json.

    python benchmarks/scale.py [--scale full|small] [--device auto] [--dtype auto] [--repeats 3] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import ModelCost, machine, matmul_peak_gflops, summary, timed, write  # noqa: E402
from workloads import continuation_prompts  # noqa: E402

from retraction_kedro.lm import (  # noqa: E402
    GenerationSettings,
    LanguageModel,
    ModelSpec,
    Steering,
    capture_hidden_states,
    generate_with_counts,
)
from retraction_kedro.lm.prefix import prefix_length, suffix_tokens_needed  # noqa: E402

LLAMA_31_8B = {
    "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
    "rope_parameters": {
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
    },
    "tie_word_embeddings": False,
}  # fmt: skip
SMALL = {
    **LLAMA_31_8B, "num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 2,
    "intermediate_size": 1792, "vocab_size": 16032,
}  # fmt: skip
DEEP = {  # the 8B's depth at a width where arithmetic is cheap: what is left of a step is its overhead (host work)
    **LLAMA_31_8B, "hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 448,
    "vocab_size": 16032,
}  # fmt: skip
STEERED_BAND = (6 / 32, 14 / 32)  # the paper's Llama band, layers 6-14 of 32, as fractions of depth
NO_GPU = "no GPU figure: this run is on the CPU; on a CUDA machine, python benchmarks/scale.py runs the 8B config"


@dataclass(frozen=True)
class Scale:
    config: dict[str, Any]
    capture_examples: int
    batch_size: int
    new_tokens: int
    batch_1_examples: int
    peak_size: int  # matmul side for the peak: large enough to fill the device
    peak_seconds: float


WORKLOAD_OPTIONS = {
    "capture-examples": "prompts captured at batch 1 and batched",
    "batch-size": "batched capture and generation (generation runs one batch)",
    "new-tokens": "tokens forced per prompt",
    "batch-1-examples": "prompts generated at batch 1",
}
SCALES = {
    "full": Scale(LLAMA_31_8B, capture_examples=256, batch_size=128, new_tokens=64, batch_1_examples=8,
                  peak_size=8192, peak_seconds=2.0),
    "small": Scale(SMALL, capture_examples=32, batch_size=16, new_tokens=16, batch_1_examples=4,
                   peak_size=1024, peak_seconds=0.5),
    "deep": Scale(DEEP, capture_examples=8, batch_size=8, new_tokens=32, batch_1_examples=4,
                  peak_size=1024, peak_seconds=0.5),
}  # fmt: skip

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "<|begin_of_text|>{% if messages[0]['role'] != 'system' %}<|start_header_id|>system<|end_header_id|>\n\n"
    "Knowledge cutoff: December 2023. Today: 26 July 2024. You answer questions about the world briefly."
    "<|eot_id|>{% endif %}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _fast_tokenizer(tokenizer: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|pad|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _byte_level_bpe(texts: Sequence[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1 << 20, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )  # merges until every word of ``texts`` is one token
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def build_tokenizer(vocab_size: int, examples: int) -> tuple[Any, list[str]]:
    """A chat tokenizer of exactly ``vocab_size`` ids, and ``examples`` continuation prompts rendered by it."""
    from tokenizers import Tokenizer

    prompts = continuation_prompts(_fast_tokenizer(_byte_level_bpe([])), examples)  # the template renders them
    data = json.loads(_byte_level_bpe(prompts).to_str())
    vocab = data["model"]["vocab"]
    if len(vocab) > vocab_size:
        raise ValueError(f"The prompts need {len(vocab)} tokens, more than the config's vocabulary of {vocab_size}")
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), vocab_size)})  # never encoded; decodable
    return _fast_tokenizer(Tokenizer.from_str(json.dumps(data))), prompts


class PeakMemory:
    """Peak memory of one run: CUDA's max allocated bytes, or the process's peak resident set on the CPU.

    On the CPU, writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current resident set
    (Linux); elsewhere ``available`` is false and no memory figure is reported.
    """

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"
        self.available = self.cuda or Path("/proc/self/clear_refs").exists()
        self.kind = "cuda_max_memory_allocated" if self.cuda else "cpu_peak_resident_set (VmHWM)"

    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device) if self.cuda else self._status("VmRSS")

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device) if self.cuda else self._status("VmHWM")

    @staticmethod
    def _status(field_name: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"/proc/self/status has no {field_name} line")


def build_model(scale: Scale, tokenizer: Any, spec: ModelSpec, seed: int, memory: PeakMemory) -> tuple[Any, Any]:
    """Random weights created on the device in the spec's dtype, and the memory the build added (None: unmeasured).

    Refuses in one line when the weights cannot fit on the device.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    config = LlamaConfig(**scale.config, **ids)
    device, dtype = torch.device(spec.resolved_device()), spec.resolved_dtype()
    with torch.device("meta"):
        shapes = AutoModelForCausalLM.from_config(config, dtype=dtype)
    needed = sum(p.numel() * p.element_size() for p in shapes.parameters())
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_host_bytes()
    if needed > free:
        raise RuntimeError(
            f"The weights need {needed / 2**30:.1f} GiB in {dtype}, but {device} has {free / 2**30:.1f} GiB free; "
            "use --scale small or a device with more memory"
        )
    before = memory.current() if memory.available else None  # after the meta build: modeling code imported
    torch.manual_seed(seed)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    added = memory.current() - before if before is not None else None
    return LanguageModel(model=model, tokenizer=tokenizer, spec=spec), added


def available_host_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable line")


@dataclass
class Run:
    """One measured variant: what it runs on which prompts, and what each repeat took."""

    name: str
    fn: Callable[[list[str]], Any]
    prompts: list[str]
    batch_size: int
    seconds: list[float] = field(default_factory=list)
    first_call_seconds: float | None = None  # the warm-up: a compiled path's compilation is in it
    error: str | None = None  # the warm-up failed: the run is left out
    peak_bytes: list[int] = field(default_factory=list)
    above_start_bytes: list[int] = field(default_factory=list)
    output: Any = None


def alternate(runs: list[Run], repeats: int, sync: Callable[[], None], memory: PeakMemory) -> None:
    """One warm-up batch of each run, then every run once per repeat, in turn (drifting load hits all alike)."""
    for run in list(runs):
        try:
            _, run.first_call_seconds = timed(partial(run.fn, run.prompts[: run.batch_size]), sync)
        except Exception as error:  # a path that cannot run here (e.g. a graph that cannot be captured): reported
            run.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            runs.remove(run)
            print(f"warm-up {run.name} failed: {run.error}", flush=True)
            continue
        print(f"warm-up {run.name}: {run.first_call_seconds:.1f} s", flush=True)
    for repeat in range(repeats):
        for run in runs:
            if memory.available:
                memory.reset()
                start = memory.current()
            run.output, seconds = timed(partial(run.fn, run.prompts), sync)
            run.seconds.append(seconds)
            if memory.available:
                peak = memory.peak()
                run.peak_bytes.append(peak)
                run.above_start_bytes.append(peak - start)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{r.name} {r.seconds[-1]:.2f} s" for r in runs), flush=True)


def figures(run: Run, work: int, unit: str, flops: float, lengths: list[int], prefix: int) -> dict[str, Any]:
    memory = {"peak_bytes": summary(run.peak_bytes), "above_start_bytes": summary(run.above_start_bytes)}
    return {
        "batch_size": run.batch_size, "examples": len(run.prompts), "prompt_tokens": sum(lengths),
        "shared_prefix_tokens": prefix, f"{unit}_per_s": summary([work / s for s in run.seconds]),
        "gflops": summary([flops / s / 1e9 for s in run.seconds]), "seconds": summary(run.seconds), "flops": flops,
        "memory": memory if run.peak_bytes else None,
    }  # fmt: skip


def prompt_plan(lm: LanguageModel, prompts: list[str]) -> tuple[list[int], int]:
    """Prompt lengths and the shared prefix a capture or generation call on ``prompts`` runs once."""
    ids = lm.tokenizer(prompts, add_special_tokens=False)["input_ids"]
    return [len(row) for row in ids], prefix_length(lm, ids, suffix_tokens_needed())


def steered_layers(layers: int) -> list[int]:
    first, last = (round(fraction * layers) for fraction in STEERED_BAND)
    return list(range(first, last + 1))


def measure_capture(lm, prompts, scale: Scale, cost: ModelCost, args, sync, memory) -> dict[str, Any]:
    runs = [
        Run(name, partial(capture_hidden_states, lm, batch_size=batch, show_progress=False), prompts, batch)
        for name, batch in (("batch_1", 1), ("batched", scale.batch_size))
    ]
    alternate(runs, args.repeats, sync, memory)
    expected = (len(prompts), lm.num_layers, lm.hidden_size)
    for run in runs:
        finite = bool(run.output.isfinite().all())
        if tuple(run.output.shape) != expected or not finite:
            raise RuntimeError(f"capture {run.name} gave {tuple(run.output.shape)} (finite: {finite}), not {expected}")
    lengths, prefix = prompt_plan(lm, prompts)
    flops = cost.capture(lengths, prefix)
    result = {run.name: figures(run, len(prompts), "examples", flops, lengths, prefix) for run in runs}
    one, batched = (run.output for run in runs)
    return {
        **result,
        "batched_over_batch_1": rate(result["batched"], "examples") / rate(result["batch_1"], "examples"),
        "max_relative_difference_batched_vs_batch_1": ((batched - one).norm(dim=-1) / one.norm(dim=-1)).max().item(),
        "hidden_norm_mean": batched.norm(dim=-1).mean().item(),
    }


def on_path(lm: LanguageModel, decoding: str) -> LanguageModel:
    """The same weights, generating through another decoding path (``model.decoding``)."""
    return LanguageModel(model=lm.model, tokenizer=lm.tokenizer, spec=replace(lm.spec, decoding=decoding))


def measure_generation(lm, prompts, scale: Scale, cost: ModelCost, alpha: float, args, sync, memory) -> dict:
    """Batch 1 on the first prompts and one batch, on each decoding path; the batch steered (prompt only, every
    token) on the loop. Each path's first call (its compilation, if any) is timed apart from the repeats."""
    layers = steered_layers(lm.num_layers)
    directions = torch.randn(lm.num_layers, lm.hidden_size, generator=torch.Generator().manual_seed(args.seed))
    directions = directions / directions.norm(dim=1, keepdim=True)
    variants = {
        "steered_prompt": [Steering(directions, layers, alpha)],
        "steered_every_token": [Steering(directions, layers, alpha, every_token=True)],
    }

    def generate(path: LanguageModel, batch: int, interventions: list, chosen: list[str]) -> list[tuple[str, int]]:
        settings = GenerationSettings(max_new_tokens=scale.new_tokens, min_new_tokens=scale.new_tokens,
                                      stop_at_newline=False, batch_size=batch)  # fmt: skip
        return generate_with_counts(path, chosen, settings, show_progress=False, interventions=interventions)

    runs = []
    for decoding in args.decodings:
        suffix = "" if decoding == "loop" else f"_{decoding}"
        path = on_path(lm, decoding)
        runs += [Run(f"batch_1{suffix}", partial(generate, path, 1, []), prompts[: scale.batch_1_examples], 1),
                 Run(f"batched{suffix}", partial(generate, path, scale.batch_size, []), prompts[: scale.batch_size],
                     scale.batch_size)]  # fmt: skip
    loop = on_path(lm, "loop")
    runs += [Run(name, partial(generate, loop, scale.batch_size, chosen), prompts[: scale.batch_size], scale.batch_size)
             for name, chosen in variants.items()]  # fmt: skip
    planned = list(runs)
    alternate(runs, args.repeats, sync, memory)
    failed = {run.name: run.error for run in planned if run.error}
    rows = {}
    for run in runs:
        counts = [count for _, count in run.output]
        if set(counts) != {scale.new_tokens}:
            raise RuntimeError(f"generation {run.name} made {sorted(set(counts))} tokens, not {scale.new_tokens}")
        lengths, prefix = prompt_plan(lm, run.prompts)
        flops = cost.generation(lengths, counts, prefix)
        rows[run.name] = figures(run, sum(counts), "tokens", flops, lengths, prefix) | {
            "generated_tokens": sum(counts), "first_call_seconds": run.first_call_seconds}
    unsteered = next(run for run in runs if run.name == "batched")
    steering = {
        run.name: {
            **{key: rows[run.name][key] for key in ("tokens_per_s", "generated_tokens", "memory")},
            "over_unsteered_per_repeat": summary([u / s for u, s in zip(unsteered.seconds, run.seconds)]),
            "changed_texts": sum(a != b for (a, _), (b, _) in zip(run.output, unsteered.output)),
        }
        for run in runs[2:]
    }
    paths = {}
    for decoding in args.decodings[1:]:
        if f"batch_1_{decoding}" in failed or f"batched_{decoding}" in failed:
            paths[decoding] = {"error": failed.get(f"batch_1_{decoding}") or failed[f"batched_{decoding}"]}
            continue
        batch_1, batched = rows[f"batch_1_{decoding}"], rows[f"batched_{decoding}"]
        same = [a == b for run, reference in ((f"batch_1_{decoding}", "batch_1"), (f"batched_{decoding}", "batched"))
                for a, b in zip(*(next(r for r in runs if r.name == name).output for name in (run, reference)))]  # fmt: skip
        paths[decoding] = {
            "batch_1": batch_1, "batched": batched,
            "batch_1_over_loop": rate(batch_1, "tokens") / rate(rows["batch_1"], "tokens"),
            "batched_over_loop": rate(batched, "tokens") / rate(rows["batched"], "tokens"),
            "texts_equal_to_loop": f"{sum(same)} of {len(same)}",
        }  # fmt: skip
    return {
        "new_tokens_per_example": scale.new_tokens,
        "batch_1": rows["batch_1"],
        "batched": rows["batched"],
        "batched_over_batch_1": rate(rows["batched"], "tokens") / rate(rows["batch_1"], "tokens"),
        "decodings": paths,
        "steering": {"layers": layers, "alpha": alpha, "alpha_is": "mean hidden-state norm of the batched capture"}
        | steering,
    }


def rate(row: dict[str, Any], unit: str) -> float:
    return row[f"{unit}_per_s"]["median"]


def peak_gflops(device: torch.device, dtype: torch.dtype, scale: Scale) -> float:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # matmul_peak_gflops draws its matrices in the default dtype
    try:
        return matmul_peak_gflops(scale.peak_size, scale.peak_seconds, str(device))
    finally:
        torch.set_default_dtype(previous)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default=None, help="default: full on CUDA, small otherwise")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    for option, meaning in WORKLOAD_OPTIONS.items():
        parser.add_argument(f"--{option}", type=int, default=None, help=f"{meaning}; default: the scale's")
    parser.add_argument("--seed", type=int, default=0, help="weights and steering directions")
    parser.add_argument("--decodings", default=None,
                        help="decoding paths to compare, the loop first (default: loop,cudagraphs,compiled on CUDA; "
                             "loop,static on CPU)")  # fmt: skip
    parser.add_argument("--output", default=None, help="default: data/08_reporting/benchmarks/scale_<scale>.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.decodings is not None:
        args.decodings = args.decodings.split(",")
        if args.decodings[0] != "loop" or not set(args.decodings) <= {"loop", "static", "compiled", "cudagraphs"}:
            parser.error(f"--decodings: loop first, then some of static, compiled, cudagraphs (got {args.decodings})")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    spec = ModelSpec(name="random-weights Llama-3.1-8B architecture", device=args.device, dtype=args.dtype)
    device = torch.device(spec.resolved_device())
    scale_name = args.scale or ("full" if device.type == "cuda" else "small")
    overrides = {name: getattr(args, name) for name in (option.replace("-", "_") for option in WORKLOAD_OPTIONS)}
    bad = {name: value for name, value in overrides.items() if value is not None and value < 1}
    if bad:
        raise ValueError(f"workload options must be >= 1, got {bad}")
    scale = replace(SCALES[scale_name], **{name: value for name, value in overrides.items() if value is not None})
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.decodings is None:
        args.decodings = ["loop", "cudagraphs", "compiled"] if device.type == "cuda" else ["loop", "static"]
    memory = PeakMemory(device)

    examples = max(scale.capture_examples, scale.batch_size, scale.batch_1_examples)
    tokenizer, prompts = build_tokenizer(scale.config["vocab_size"], examples)
    lm, build_bytes = build_model(scale, tokenizer, spec, args.seed, memory)
    sync()
    cost = ModelCost.of(lm.model)
    parameters = sum(p.numel() for p in lm.model.parameters())
    peaks = [peak_gflops(device, lm.model.dtype, scale)]
    lengths, prefix = prompt_plan(lm, prompts)
    result: dict[str, Any] = {
        "scale": scale_name,
        "architecture": {"full": "Llama-3.1-8B", "small": "Llama-3.1-8B divided by 8 in width and depth",
                         "deep": "Llama-3.1-8B's 32 layers at hidden 128 (per-step overhead)"}[scale_name],
        "config": scale.config,
        "parameters": parameters,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(lm.model.dtype),
        "note": None if device.type == "cuda" else NO_GPU,
        "prompts": {
            "count": len(prompts),
            "tokens_min": min(lengths),
            "tokens_mean": statistics.mean(lengths),
            "tokens_max": max(lengths),
            "shared_prefix_tokens": prefix,
            "tokenizer_vocabulary": len(tokenizer),
        },
        "workload": {key: value for key, value in asdict(scale).items() if key != "config"}
        | {"repeats": args.repeats, "seed": args.seed, "decodings": args.decodings},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "model_cost": asdict(cost),
        "memory": {
            "kind": memory.kind if memory.available else None,
            "parameter_bytes": sum(p.numel() * p.element_size() for p in lm.model.parameters()),
            "model_build_bytes": build_bytes,  # CUDA: the weights; CPU: resident set added while building
        },
        "machine": machine(),
    }
    print(f"{scale_name}: {parameters / 1e9:.3f}B parameters, {lm.model.dtype} on {device}", flush=True)
    result["capture"] = measure_capture(lm, prompts[: scale.capture_examples], scale, cost, args, sync, memory)
    alpha = result["capture"]["hidden_norm_mean"]
    result["generation"] = measure_generation(lm, prompts, scale, cost, alpha, args, sync, memory)
    peaks.append(peak_gflops(device, lm.model.dtype, scale))
    result["matmul_peak_gflops"] = summary(peaks) | {"dtype": str(lm.model.dtype), "size": scale.peak_size}
    for part in (result["capture"]["batch_1"], result["capture"]["batched"],
                 result["generation"]["batch_1"], result["generation"]["batched"]):  # fmt: skip
        part["percent_of_peak"] = 100 * part["gflops"]["median"] / statistics.median(peaks)
    print_summary(result)
    write(f"scale_{scale_name}", result, args.output)
    return result


def print_summary(result: dict[str, Any]) -> None:
    capture, generation = result["capture"], result["generation"]
    print(f"matmul peak {result['matmul_peak_gflops']['median']:.0f} GFLOP/s ({result['dtype']})")
    for name, part, unit in (("capture", capture, "examples"), ("generation", generation, "tokens")):
        for key in ("batch_1", "batched"):
            speed, memory = part[key][f"{unit}_per_s"], part[key]["memory"]
            print(
                f"{name} {key} (batch {part[key]['batch_size']}): {speed['median']:.1f} {unit}/s "
                f"({speed['min']:.1f}-{speed['max']:.1f}), {part[key]['percent_of_peak']:.1f}% of peak"
                + (f", peak memory {memory['peak_bytes']['max'] / 2**20:.0f} MiB" if memory else "")
            )
    for name in ("steered_prompt", "steered_every_token"):
        print(f"{name}: {generation['steering'][name]['over_unsteered_per_repeat']['median']:.3f} of unsteered")
    for decoding, path in generation["decodings"].items():
        if "error" in path:
            print(f"{decoding}: could not run: {path['error']}")
            continue
        for key in ("batch_1", "batched"):
            speed = path[key]["tokens_per_s"]
            print(f"generation {key} on {decoding} (batch {path[key]['batch_size']}): {speed['median']:.1f} tokens/s, "
                  f"{path[f'{key}_over_loop']:.2f}x the loop, first call {path[key]['first_call_seconds']:.1f} s")
        print(f"{decoding}: texts equal to the loop's: {path['texts_equal_to_loop']}")


if __name__ == "__main__":
    main()
