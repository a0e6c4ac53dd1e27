#!/usr/bin/env bash
# Side virtualenvs with the authors' own CPU pipelines for bench/models.py (issue 16).
#
#   bench/setup_authors.sh [brainchop] [deepbet] [blast-ct]     (default: all three)
#
# One venv per family under .bench-venvs/ (gitignored), every version pinned:
#   brainchop  brainchop==0.2.5 + tinygrad==0.14.0 (the runtime of the staged references)
#   deepbet    torch==2.13.0 (local CPU wheel) then deepbet==1.0.2
#   blast-ct   torch==2.13.0 (local CPU wheel) then blast-ct==2.1.0
# torch is installed FIRST and pinned by a constraints file for the rest, so pip never swaps
# it for an unpinned (CUDA, several GB) build. Wheels are taken from $AUTHOR_WHEELS
# (default /tmp/wheels) and $TORCH_WHEELS (default /opt/wheels) before PyPI.
# Idempotent: a venv whose .complete marker exists is skipped; a half-made one is rebuilt.
# Installing downloads no model weights; the bench drivers refuse network access at run time.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${BENCH_VENVS:-$REPO/.bench-venvs}"
PY="${BENCH_PYTHON:-python3.11}"
AUTHOR_WHEELS="${AUTHOR_WHEELS:-/tmp/wheels}"
TORCH_WHEELS="${TORCH_WHEELS:-/opt/wheels}"
TORCH_PIN="torch==2.13.0"

families=("$@")
[ ${#families[@]} -eq 0 ] && families=(brainchop deepbet blast-ct)

links=()
for d in "$AUTHOR_WHEELS" "$TORCH_WHEELS"; do
    [ -d "$d" ] && links+=(--find-links "$d")
done

make_venv() {  # family, then the pinned requirements (torch first when present)
    local family="$1"; shift
    local venv="$ROOT/$family"
    if [ -f "$venv/.complete" ]; then
        echo "[$family] $venv is complete: skipped"
        return
    fi
    echo "[$family] creating $venv"
    rm -rf "$venv"
    mkdir -p "$ROOT"
    "$PY" -m venv "$venv"
    local pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check "${links[@]}")
    local constraints="$venv/constraints.txt"
    : >"$constraints"
    for req in "$@"; do
        if [ "$req" = "$TORCH_PIN" ]; then
            # CPU wheel from the local folder only: never fall back to an index build.
            "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
                --no-deps --find-links "$TORCH_WHEELS" "$TORCH_PIN"
            # Pin the exact local build (e.g. 2.13.0+cpu), then fetch only its small deps.
            "$venv/bin/python" -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' \
                >>"$constraints"
            "${pip[@]}" -c "$constraints" "$(head -1 "$constraints")"
        fi
    done
    for req in "$@"; do
        [ "$req" = "$TORCH_PIN" ] && continue
        "${pip[@]}" -c "$constraints" "$req"
    done
    "$venv/bin/python" -m pip freeze >"$venv/freeze.txt"
    touch "$venv/.complete"
    echo "[$family] done: $(grep -ciE '^(torch|tinygrad|brainchop|deepbet|blast[-_]ct)=' \
        "$venv/freeze.txt") pinned packages recorded in $venv/freeze.txt"
}

for family in "${families[@]}"; do
    case "$family" in
        brainchop)
            make_venv brainchop "tinygrad==0.14.0" "brainchop==0.2.5"
            # tinygrad's CPU device compiles its kernels with clang (the references used 14).
            command -v clang >/dev/null || command -v clang-14 >/dev/null || \
                echo "[brainchop] WARNING: no clang on PATH: tinygrad's CPU device needs it" \
                     "(Debian: apt-get install clang-14)" >&2
            ;;
        deepbet) make_venv deepbet "$TORCH_PIN" "deepbet==1.0.2" ;;
        blast-ct) make_venv blast-ct "$TORCH_PIN" "blast-ct==2.1.0" ;;
        *) echo "unknown family: $family (brainchop, deepbet, blast-ct)" >&2; exit 2 ;;
    esac
done
