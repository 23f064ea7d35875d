"""Self-check of this machine: the versions found, and the model mechanics' oracle checks on its device.

    python -m retraction_kedro.doctor [--device auto] [--dtype float32,bfloat16] [--model NAME] [--architectures ...]
    make check-device

One line per check; the exit status is 1 when any check fails. On CUDA it runs float32 (relative
error within 1e-4: exact to float noise) and bfloat16 (within 1e-1: bfloat16 keeps 8 bits of
mantissa, and the errors seen are up to ~4e-2, while each breakage a check names moves its numbers by
0.3 or more), and checks the compiled static-cache path that generation uses there.
It needs torch and transformers only (not Kedro), so it also runs on a GPU image of other versions.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "tokenizers", "peft", "accelerate", "kedro"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def parse_args(argv: Sequence[str] | None):
    parser = argparse.ArgumentParser(prog="retraction_kedro.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (cuda if available) | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", default=None, help="comma-separated; default: float32,bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--architectures", default=None, help="comma-separated tiny architectures (default: all)")
    parser.add_argument("--model", default=None, help="also check this model (a hub id or local folder) on the device")
    parser.add_argument("--compiled", default=None,
                        help="architectures whose compiled decode step is checked too (default: llama on CUDA, where "
                             "generation runs it; none on CPU, where it runs the loop)")  # fmt: skip
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode (default: reduce-overhead on CUDA, inductor on CPU)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    found = versions()
    import torch

    from retraction_kedro.lm.contracts import SUPPORTED_TRANSFORMERS, UnsupportedVersionError, check_transformers_version

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    gpu = f" ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})" if device.startswith("cuda") else ""
    print(f"retraction_kedro doctor: {device}{gpu}")
    print("versions: " + ", ".join(f"{name} {version}" for name, version in found.items()))
    try:
        check_transformers_version()
        print(f"ok   transformers {found['transformers']} is in the tested range {SUPPORTED_TRANSFORMERS}")
    except UnsupportedVersionError as error:
        print(f"FAIL {error}")
        return 1

    from retraction_kedro.lm import ModelSpec, load_language_model
    from retraction_kedro.lm.selfcheck import run_checks
    from retraction_kedro.lm.tiny import ARCHITECTURES, chat_prompts, tiny_model

    dtypes = (args.dtype or ("float32,bfloat16" if device.startswith("cuda") else "float32")).split(",")
    architectures = args.architectures.split(",") if args.architectures else sorted(ARCHITECTURES)
    cuda = device.startswith("cuda")
    compile_mode = args.compile_mode or ("reduce-overhead" if cuda else "inductor")
    compiled = set((args.compiled if args.compiled is not None else ("llama" if cuda else "")).split(",")) - {""}
    start, results = time.perf_counter(), []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        on = f"{compile_mode} on {', '.join(sorted(compiled))}" if compiled else "not checked (generation runs the loop here)"
        print(f"-- {dtype_name} (relative errors; compiled step: {on})")
        for architecture in architectures:
            lm = tiny_model(architecture, device=device, dtype=dtype)
            for result in run_checks(lm, chat_prompts(lm), architecture, compile_mode if architecture in compiled else None):
                print(result.line(), flush=True)
                results.append(result)
        if args.model:
            lm = load_language_model(ModelSpec(name=args.model, device=device, dtype=dtype_name))
            prompts = chat_prompts(lm)
            for result in run_checks(lm, prompts, args.model.rstrip("/").split("/")[-1][:11], compile_mode if cuda else None):
                print(result.line(), flush=True)
                results.append(result)
    failed = [r for r in results if not r.passed]
    ran = [r for r in results if not r.skipped]
    print(f"{len(ran) - len(failed)} of {len(ran)} checks passed ({len(results) - len(ran)} skipped) in {time.perf_counter() - start:.0f} s")
    for result in failed:
        print(f"FAILED {result.model} {result.check}: {result.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
