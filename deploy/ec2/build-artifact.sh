#!/usr/bin/env bash
# Build the single-file tickserver artifact: a shiv zipapp holding tickserver (with its compiled
# C++ core) and every pinned dependency, run by CPython 3.11 on Debian 12:
#
#   deploy/ec2/build-artifact.sh [--ref REF] [--out DIR] [--lambda-arch x86_64|arm64]
#
#   --ref REF      git tag/branch/commit to build (default HEAD; uncommitted changes are NOT
#                  included, a warning says so)
#   --out DIR      where to write the outputs (default dist/)
#   --lambda-arch  architecture of the compactor Lambda zip (default x86_64)
#
# Outputs (each with a .sha256 file beside it):
#   DIR/tickserver-VERSION-cp311-ARCH.pyz             the server; ARCH is this machine's
#   DIR/tickserver-compactor-VERSION-LAMBDAARCH.zip   the Lambda compactor, when REF has
#                                                     tickserver/compactor.py
#
# Reproducible: sources come from `git archive REF`, dependencies from
# deploy/ec2/requirements.lock (pinned, hash-checked), build tools from build-requirements.lock,
# timestamps from SOURCE_DATE_EPOCH (default: REF's commit time), and paths are mapped out of
# the compiled extension. The same REF on the same OS/arch gives the same bytes.
# The extension is compiled for this machine's architecture: build on an arm64 (Graviton)
# Debian 12 machine for arm64 instances.
#
# Cache (safe to delete): ${TICKSERVER_BUILD_CACHE:-~/.cache/tickserver-build} keeps the build
# tools' venv and the compiled tickserver wheel per source tree, so a rebuild of an unchanged
# tree does not recompile.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
REF=HEAD
OUT=$ROOT/dist
LAMBDA_ARCH=x86_64
while [ $# -gt 0 ]; do
  case $1 in
    --ref) REF=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --lambda-arch) LAMBDA_ARCH=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-artifact: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $LAMBDA_ARCH in
  x86_64|arm64) ;;
  *) echo "build-artifact: --lambda-arch must be x86_64 or arm64, got $LAMBDA_ARCH" >&2; exit 2 ;;
esac
step() { printf '[build-artifact] %s\n' "$*" >&2; }
die() { printf 'build-artifact: %s\n' "$*" >&2; exit 1; }

"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
  || die "needs CPython 3.11 (Debian 12's python3, the artifact's interpreter); $PY is $("$PY" -V 2>&1)"
cd "$ROOT"
COMMIT=$(git rev-parse --verify --quiet "$REF^{commit}") || die "no such git ref: $REF"
TREE=$(git rev-parse "$COMMIT^{tree}")
if [ "$REF" = HEAD ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  step "warning: uncommitted changes are not in the artifact (it is built from commit ${COMMIT:0:12})"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct "$COMMIT")}
ARCH=$(uname -m)
CACHE=${TICKSERVER_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tickserver-build}
mkdir -p "$CACHE" "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tickserver-artifact.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step "source: ${COMMIT:0:12} ($REF), SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
mkdir -p "$WORK/src"
git archive "$COMMIT" | tar -x -C "$WORK/src"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$WORK/src/tickserver/_version.py")
[ -n "$VERSION" ] || die "cannot read __version__ from tickserver/_version.py at $REF"
LOCK=$WORK/src/deploy/ec2/requirements.lock
BUILD_LOCK=$WORK/src/deploy/ec2/build-requirements.lock
[ -f "$LOCK" ] && [ -f "$BUILD_LOCK" ] || die "$REF has no deploy/ec2/requirements.lock"

# Build tools, pinned and hash-checked, in a venv at a stable path (its path ends up in no
# output, but a stable one keeps the cache warm).
TOOLS=$CACHE/tools-$(cat "$BUILD_LOCK" | sha256sum | cut -c1-16)
if [ ! -x "$TOOLS/bin/shiv" ]; then
  step "build tools -> $TOOLS"
  rm -rf "$TOOLS"
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    --no-deps -r "$BUILD_LOCK"
fi

# The tickserver wheel (compiles the C++ core), cached per source tree + interpreter + arch.
PYTAG=$("$TOOLS/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
WHEELS=$CACHE/wheels/$TREE-$PYTAG-$ARCH-$(sha256sum <"$BUILD_LOCK" | cut -c1-12)
if ! ls "$WHEELS"/tickserver-*.whl >/dev/null 2>&1; then
  step "compiling tickserver $VERSION ($PYTAG, $ARCH); this takes a few minutes"
  rm -rf "$WHEELS.tmp"
  "$TOOLS/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --wheel-dir "$WHEELS.tmp" \
    -Cbuild-dir="$WORK/cmake" \
    -Ccmake.define.CMAKE_CXX_FLAGS="-ffile-prefix-map=$WORK=/build -ffile-prefix-map=$TOOLS=/tools" \
    "$WORK/src"
  mv "$WHEELS.tmp" "$WHEELS"
else
  step "tickserver wheel for tree ${TREE:0:12} from cache"
fi

step "dependencies from requirements.lock (hash-checked)"
SITE=$WORK/site-packages
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  --require-hashes --no-deps --prefer-binary --target "$SITE" -r "$LOCK"
rm -rf "${SITE:?}/bin"
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  --no-deps --target "$SITE" "$WHEELS"/tickserver-*.whl
# Drop what would differ between build machines and is not needed to run.
rm -rf "${SITE:?}/bin"
find "$SITE" -name direct_url.json -path '*.dist-info/*' -delete
find "$SITE" -name __pycache__ -type d -prune -exec rm -rf {} +

NAME=tickserver-$VERSION-$PYTAG-$ARCH.pyz
step "zipapp -> $OUT/$NAME"
"$TOOLS/bin/shiv" --site-packages "$SITE" --reproducible --compressed \
  --python '/usr/bin/env python3' --entry-point tickserver.cli:main \
  --output-file "$WORK/$NAME" >/dev/null
mv "$WORK/$NAME" "$OUT/$NAME"
(cd "$OUT" && sha256sum "$NAME" >"$NAME.sha256")
SHIV_ROOT=$WORK/shiv "$PY" "$OUT/$NAME" --version >/dev/null \
  || die "the artifact does not run: $PY $OUT/$NAME --version failed"

if [ -f "$WORK/src/tickserver/compactor.py" ]; then
  ZIP=tickserver-compactor-$VERSION-$LAMBDA_ARCH.zip
  step "Lambda compactor -> $OUT/$ZIP"
  "$TOOLS/bin/python" "$ROOT/deploy/ec2/lambda_zip.py" --src "$WORK/src" --lock "$LOCK" \
    --arch "$LAMBDA_ARCH" --work "$WORK/lambda" --output "$OUT/$ZIP"
  (cd "$OUT" && sha256sum "$ZIP" >"$ZIP.sha256")
else
  step "no tickserver/compactor.py at $REF: no Lambda zip"
fi
step "done: $(du -h "$OUT/$NAME" | cut -f1) $OUT/$NAME"
echo "$OUT/$NAME"
