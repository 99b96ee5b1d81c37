#!/usr/bin/env bash
# UI smoke run of the Blender add-on, as a person would use it: Debian's Blender 3.4 in a real
# window under Xvfb, the real modal click tool driven by xdotool, screenshots of the result.
#
# Usage: scripts/ui_smoke.sh [--no-docs]            (as root when packages are missing)
#
# 1. apt-get installs blender, xvfb, xdotool and python3-numpy when missing (Blender's Python
#    is Debian's python3, so Debian's numpy is Blender's numpy); pip installs the add-on's
#    other deps (httpx, pyjwt, pillow; never numpy) with --target into a cache outside the
#    repo: $KLING_CACHE/blender34-deps (default ~/.cache/kling-elements).
# 2. Starts Xvfb, the sandbox (any free loopback port), writes the sample clip (1280x720,
#    30 fps, 2 s) and its ground truth, then Blender with scripts/ui_smoke_blender.py under a
#    temporary HOME / user config, the add-on linked in as a legacy add-on.
#    Blender clicks points on the ball in four view/transform scenarios, then fills in the
#    Edit panel, clicks Generate's confirmation popup and waits for the add-on's own timer
#    to poll the task and import the result above the source (the sandbox renders it).
# 3. Prints the results and PASS/FAIL; exits non-zero on failure. Screenshots, logs and
#    results.json go to $UI_SMOKE_OUT (default /tmp/kling-ui-smoke); the README's five
#    screenshots (blender-addon-{overlay,panel,edit,tasks,result}.png) are also written to
#    docs/img/ unless --no-docs is given. Blender's TMPDIR (where the add-on keeps results
#    of an unsaved .blend) is inside the run's temporary folder, removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
OUT=${UI_SMOKE_OUT:-/tmp/kling-ui-smoke}
CACHE=${KLING_CACHE:-$HOME/.cache/kling-elements}
DEPS=$CACHE/blender34-deps
DOCS=$ROOT/docs/img
SCREEN_W=1600
SCREEN_H=900
BLENDER_TIMEOUT_S=300

case ${1:-} in
  "") ;;
  --no-docs) DOCS= ;;
  *) echo "usage: $0 [--no-docs]" >&2; exit 2 ;;
esac

say() { echo "ui-smoke: $*"; }
die() { echo "ui-smoke: FAIL $*" >&2; exit 1; }

wait_until() {  # SECONDS WHAT COMMAND...: poll COMMAND until it succeeds, at most SECONDS
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < end)) || die "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}

[[ -x $PY ]] || die "no $PY: run 'make test' first (it creates the project's venv)"

# --- 1. what Blender needs -------------------------------------------------------------------
missing=()
command -v blender >/dev/null || missing+=(blender)
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xdotool >/dev/null || missing+=(xdotool)
dpkg -s python3-numpy >/dev/null 2>&1 || missing+=(python3-numpy)
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/kling-ui-smoke-work.XXXXXX)
pids=()
stop() {  # PID: TERM, then KILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/home/config" "$WORK/home/scripts/addons" "$WORK/tmp" "$OUT"
PYVER=$(HOME=$WORK/home BLENDER_USER_CONFIG=$WORK/home/config timeout 60 \
  blender -b --factory-startup --python-expr \
  'import sys; print("PYVER=%d.%d" % sys.version_info[:2])' 2>/dev/null | sed -n 's/^PYVER=//p')
[[ -n $PYVER ]] || die "could not ask Blender for its Python version"
say "$(blender --version 2>/dev/null | head -1), Python $PYVER"

if [[ ! -f $DEPS/.installed-py$PYVER ]]; then
  say "pip install --target $DEPS httpx pyjwt pillow (for Python $PYVER)"
  rm -rf "$DEPS"
  timeout 300 "$PY" -m pip install --quiet --disable-pip-version-check --target "$DEPS" \
    --python-version "$PYVER" --only-binary=:all: 'httpx>=0.25' 'pyjwt>=2.6' 'pillow>=9.0' \
    >"$OUT/pip.log" 2>&1 || { tail -n 20 "$OUT/pip.log"; die "pip install failed"; }
  [[ ! -e $DEPS/numpy ]] || die "pip put numpy into $DEPS; Blender must use Debian's numpy"
  touch "$DEPS/.installed-py$PYVER"
fi

# --- 2. display, sandbox, clip -----------------------------------------------------------------
Xvfb -displayfd 3 -screen 0 "${SCREEN_W}x${SCREEN_H}x24" -nolisten tcp \
  3>"$WORK/display" >"$OUT/xvfb.log" 2>&1 &
pids+=($!)
wait_until 15 "Xvfb" test -s "$WORK/display"
DISPLAY=:$(tr -d '[:space:]' <"$WORK/display")
export DISPLAY
wait_until 10 "the X display $DISPLAY" xdotool getdisplaygeometry >/dev/null
say "Xvfb on $DISPLAY ($(xdotool getdisplaygeometry))"

"$ROOT/.venv/bin/kling-elements" sandbox --host 127.0.0.1 --port 0 --data-dir "$WORK/sandbox" \
  --task-seconds 1 >"$OUT/sandbox.log" 2>&1 &
pids+=($!)
wait_until 30 "the sandbox" grep -q "KLINGAI_SECRET_KEY=" "$OUT/sandbox.log"
BASE_URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$OUT/sandbox.log")
say "sandbox at $BASE_URL"

export SMOKE_WORK=$WORK SMOKE_OUT=$OUT SMOKE_DOCS=$DOCS SMOKE_DEPS=$DEPS SMOKE_ROOT=$ROOT
export SMOKE_BASE_URL=$BASE_URL
SMOKE_ACCESS_KEY=$(sed -n 's/.*KLINGAI_ACCESS_KEY=//p' "$OUT/sandbox.log")
SMOKE_SECRET_KEY=$(sed -n 's/.*KLINGAI_SECRET_KEY=//p' "$OUT/sandbox.log")
export SMOKE_ACCESS_KEY SMOKE_SECRET_KEY
timeout 120 "$PY" - <<'PY'
import json
import os

import numpy as np

from kling_elements.sandbox.sample import make_clip

env = os.environ
work = env["SMOKE_WORK"]
clip = make_clip(f"{work}/clip.mp4", width=1280, height=720, fps=30, seconds=2.0, seed=3)
frames = range(clip.frame_count)
np.savez_compressed(
    f"{work}/truth.npz", width=clip.width, height=clip.height,
    masks=np.packbits(np.stack([clip.mask(i) for i in frames]), axis=-1),
    centers=np.array([clip.center(i) for i in frames]))
config = {
    "clip": str(clip.path), "truth": f"{work}/truth.npz", "out": env["SMOKE_OUT"],
    "docs": env["SMOKE_DOCS"], "results": f"{env['SMOKE_OUT']}/results.json",
    "deps": env["SMOKE_DEPS"], "core": f"{env['SMOKE_ROOT']}/core",
    "base_url": env["SMOKE_BASE_URL"], "access_key": env["SMOKE_ACCESS_KEY"],
    "secret_key": env["SMOKE_SECRET_KEY"],
}
with open(f"{work}/config.json", "w") as f:
    json.dump(config, f)
print(f"ui-smoke: clip {clip.width}x{clip.height} {clip.fps:g} fps {clip.frame_count} frames")
PY
unset SMOKE_ACCESS_KEY SMOKE_SECRET_KEY

# --- 3. Blender ----------------------------------------------------------------------------------
ln -s "$ROOT/blender_addon" "$WORK/home/scripts/addons/blender_addon"
rm -f "$OUT/results.json"
say "Blender running the UI smoke (log: $OUT/blender.log)"
env -u KLINGAI_API_KEY -u KLINGAI_ACCESS_KEY -u KLINGAI_SECRET_KEY -u KLINGAI_BASE_URL \
  HOME="$WORK/home" BLENDER_USER_CONFIG="$WORK/home/config" \
  BLENDER_USER_SCRIPTS="$WORK/home/scripts" TMPDIR="$WORK/tmp" \
  timeout -k 10 "$BLENDER_TIMEOUT_S" blender --factory-startup -noaudio \
  --window-geometry 0 0 "$SCREEN_W" "$SCREEN_H" \
  --python "$ROOT/scripts/ui_smoke_blender.py" -- "$WORK/config.json" >"$OUT/blender.log" 2>&1 &
pids+=($!)
rc=0
wait "${pids[-1]}" || rc=$?

grep '^ui-smoke:' "$OUT/blender.log" || true
if ((rc != 0)) || [[ ! -f $OUT/results.json ]]; then
  ((rc == 124)) && echo "ui-smoke: Blender was stopped after ${BLENDER_TIMEOUT_S}s"
  echo "--- last lines of $OUT/blender.log:"
  tail -n 30 "$OUT/blender.log"
  echo "ui-smoke: FAIL (Blender exit status $rc); screenshots and logs in $OUT"
  exit 1
fi
echo "ui-smoke: PASS; screenshots and logs in $OUT${DOCS:+, README screenshots in $DOCS}"
