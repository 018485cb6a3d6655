#!/usr/bin/env bash
# Every CUDA path and the GPU figures in one command, for a GPU machine with its own Python and
# torch and no network (e.g. one H200, Python 3.12, numpy 2):
#
#   bash benchmarks/gpu_suite.sh --out DIR [--datasets DIR] [--smoke]
#
# 1. installs recbole (without its dependencies) and the few packages it imports that such a
#    machine lacks, from the wheels in .whl/ when they are not importable, and prints versions;
# 2. runs the test suite's GPU-marked tests (python -m pytest -m gpu tests);
# 3. benchmarks/gpu_throughput.py for LSRM at l2, l12, l24, l48 and HSTU and Llama at l2, l12, l24;
# 4. benchmarks/ml1m_quality.py with a 120 s budget (reads DIR/ml-1m/ml-1m.inter.xz);
# 5. writes what it printed (suite.log, one .txt per step) and figures.json to --out.
# A failing step is recorded and the others still run; the exit status is 1 if any failed.
# Each step has a time limit; together at most 500 s on the GPU.
# --smoke runs the same steps on a CPU at the benchmarks' small CPU size and skips, saying so,
# what needs CUDA (the suite's own test runs it, so this script cannot rot).
#
# Before the machine is lent (here, with network; the folders are git-ignored, not committed):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl recbole==1.2.1 colorlog texttable
#   mkdir -p .data/ml-1m && cp ../shared/datasets/ml-1m/ml-1m.inter.xz .data/ml-1m/
# then on the machine (carry .whl and .data): bash benchmarks/gpu_suite.sh --out "$OUT" --datasets .data
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="" DATASETS="$REPO/../shared/datasets" SMOKE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#--out=}"; shift ;;
        --datasets) DATASETS="$2"; shift 2 ;;
        --datasets=*) DATASETS="${1#--datasets=}"; shift ;;
        --smoke) SMOKE=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || { echo "error: --out DIR is required (see --help)" >&2; exit 2; }
mkdir -p "$OUT" || { echo "error: cannot create $OUT" >&2; exit 2; }
OUT="$(cd "$OUT" && pwd)"
exec > >(tee "$OUT/suite.log") 2>&1
PY="${PYTHON:-python3}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
STATUS="$OUT/steps.tsv"
: > "$STATUS"

# The limits fit a GPU's 8 minutes; a smoke run on a (possibly busy) CPU gets five times as long.
LIMIT_SCALE=1
[ "$SMOKE" = 1 ] && LIMIT_SCALE=5

step() {  # step NAME TIMEOUT_S COMMAND...: run, keep its output in NAME.txt, record status and time
    local name="$1" limit="$(( $2 * LIMIT_SCALE ))"; shift 2
    local start=$SECONDS
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$STATUS"
    echo "== $name: exit $rc in $((SECONDS - start)) s"
}

echo "== install"
if ! "$PY" -c "import recbole, colorlog, texttable" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-suite-site .whl/*.whl \
            && export PYTHONPATH="$PYTHONPATH:/tmp/gpu-suite-site"
    else
        echo "recbole is not importable and there is no .whl/ folder (see --help)"
    fi
fi
step versions 60 "$PY" - <<'EOF'
import platform, numpy, pandas, torch, recbole
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"numpy {numpy.__version__}, pandas {pandas.__version__}, recbole {recbole.__version__}")
print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA device)")
EOF

if [ "$SMOKE" = 1 ]; then
    LSRM_SCALES=l2 HSTU_SCALES=l2
else
    LSRM_SCALES=l2,l12,l24,l48 HSTU_SCALES=l2,l12,l24
fi
step gpu_tests 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
step throughput_lsrm 100 "$PY" benchmarks/gpu_throughput.py --model=LSRM --scales="$LSRM_SCALES"
step throughput_hstu 60 "$PY" benchmarks/gpu_throughput.py --model=HSTU --scales="$HSTU_SCALES"
step throughput_llama 60 "$PY" benchmarks/gpu_throughput.py --model=Llama --scales="$HSTU_SCALES"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    step ml1m_quality 160 "$PY" benchmarks/ml1m_quality.py --budget=120 --epochs=200 --n_layers=4 --d_model=128 --n_heads=4 --datasets="$DATASETS"
else
    echo "== ml1m_quality: skipped (needs CUDA: on a CPU one ML-1M epoch takes minutes)"
fi

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
figures = {"steps": {}}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    figures["steps"][name] = {"exit": int(rc), "seconds": int(seconds)}
    lines = (out / f"{name}.txt").read_text(errors="replace").splitlines()
    if name == "versions":
        figures["versions"] = lines
    last = next((l for l in reversed(lines) if l.startswith(("[", "{"))), None)
    if last is not None:
        try:
            figures[name] = json.loads(last)
        except json.JSONDecodeError:
            pass
    if name == "gpu_tests" and lines:
        figures["gpu_tests_summary"] = lines[-1]
(out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
failed = [n for n, s in figures["steps"].items() if s["exit"] != 0]
print("failed steps: " + (", ".join(failed) if failed else "none") + f"; figures in {out / 'figures.json'}")
sys.exit(1 if failed else 0)
EOF
