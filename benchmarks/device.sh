#!/usr/bin/env bash
# The GPU path measured in one prepared, unattended run (benchmarks/device.py): one JSON.
#
#   bash benchmarks/device.sh [--dry] [--out FILE] [--budget SECONDS]
#   bash benchmarks/device.sh --wheelhouse
#
# --dry: tiny settings on this CPU (CI runs it: `make device-dry`). Without --out the JSON
# goes to $OUT/device[-dry].json where $OUT is set (the device machine's output folder),
# else to build/device/ (ignored). The packages of benchmarks/device-wheels.txt that
# cannot be imported are installed from the wheelhouse .whl/ into a scratch folder on
# PYTHONPATH (nothing is installed into the machine's environment); --wheelhouse builds
# .whl/ here (needs the package index), for a machine with Python 3.12 on x86-64.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIST=$ROOT/benchmarks/device-wheels.txt
WHEELHOUSE=${WHEELHOUSE:-$ROOT/.whl}
SITE=${DEVICE_SITE:-/tmp/uni-device-site}
PY=${PYTHON:-python3}
[[ -x $ROOT/.venv/bin/python && -z ${PYTHON:-} ]] && PY=$ROOT/.venv/bin/python
specs() { grep -v '^\s*\(#\|$\)' "$LIST"; }

if [[ ${1:-} == --wheelhouse ]]; then
    mkdir -p "$WHEELHOUSE"
    for spec in $(specs); do
        # wheels for the device machine's Python; an sdist-only package is built here
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 \
            --platform manylinux2014_x86_64 -d "$WHEELHOUSE" "$spec" ||
            "$PY" -m pip wheel -q --no-deps -w "$WHEELHOUSE" "$spec"
    done
    ls -l "$WHEELHOUSE"
    exit 0
fi

DRY=
OUT_FILE=
ARGS=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --dry) DRY=1; ARGS+=(--dry) ;;
        --out) OUT_FILE=$2; shift ;;
        --budget) ARGS+=(--budget "$2"); shift ;;
        *) echo "device.sh: unknown argument $1 (--dry, --out FILE, --budget S, --wheelhouse)" >&2
           exit 2 ;;
    esac
    shift
done
NAME=device${DRY:+-dry}.json
OUT_FILE=${OUT_FILE:-${OUT:+$OUT/$NAME}}
OUT_FILE=${OUT_FILE:-$ROOT/build/device/$NAME}

# which listed distributions are missing here
MISSING=$("$PY" - "$LIST" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    spec = line.split("#")[0].strip()
    if spec:
        try:
            version(spec.split("==")[0])
        except PackageNotFoundError:
            print(spec)
PY
)
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [[ -n $MISSING ]]; then
    if [[ ! -d $WHEELHOUSE ]]; then
        echo "device.sh: missing $(echo $MISSING) and no wheelhouse at $WHEELHOUSE" \
             "(build it with: bash benchmarks/device.sh --wheelhouse)" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" --find-links "$WHEELHOUSE" $MISSING
    export PYTHONPATH=$PYTHONPATH:$SITE
fi
[[ -n $DRY ]] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONUNBUFFERED=1
exec "$PY" "$ROOT/benchmarks/device.py" "${ARGS[@]}" --out "$OUT_FILE"
