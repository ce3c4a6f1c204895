#!/bin/sh
# Installs the Debian packages elmo-c builds, tests and runs with, when any is missing.
# Idempotent and quick when everything is present (one dpkg-query call).
# --mpi: Open MPI too (`make MPI=1`, multi-node training; CI tests it).
set -eu

PACKAGES="build-essential pkg-config libopenblas-dev libopenblas0-openmp libhdf5-dev \
hdf5-tools libcjson-dev libcmocka-dev zlib1g-dev libsnappy-dev"
[ "${1:-}" = "--mpi" ] && PACKAGES="$PACKAGES openmpi-bin libopenmpi-dev"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install:$missing" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
