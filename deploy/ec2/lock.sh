#!/usr/bin/env bash
# Re-pin the artifact's dependencies after a change to pyproject.toml's [project] dependencies
# (or to build-requirements.in), with sha256 hashes of every file PyPI has for each pinned
# version, so the lock serves both x86_64 and aarch64 builds:
#
#   deploy/ec2/lock.sh            # writes deploy/ec2/requirements.lock, build-requirements.lock
#
# Needs CPython 3.11 (the artifact's interpreter on Debian 12) and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "lock.sh: needs CPython 3.11, $PY is $("$PY" -V)" >&2; exit 2; }
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check 'pip-tools==7.5.1'
compile() {
  # Resolve against PyPI only (a machine's mirrors or find-links must not change the pins).
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT -u PIP_INDEX_URL \
    PIP_CONFIG_FILE=/dev/null "$tools/bin/pip-compile" --quiet --generate-hashes --strip-extras --allow-unsafe \
    --no-emit-index-url --index-url https://pypi.org/simple --output-file "$@"
}
echo "locking runtime dependencies (pyproject.toml) -> deploy/ec2/requirements.lock"
compile deploy/ec2/requirements.lock pyproject.toml
echo "locking build tools (build-requirements.in) -> deploy/ec2/build-requirements.lock"
compile deploy/ec2/build-requirements.lock deploy/ec2/build-requirements.in
echo "done: review and commit both files"
