#!/usr/bin/env bash
# Set up everything the demo and the tests need on a fresh machine, then do nothing on later runs:
# the system packages that are missing (apt), a virtualenv in .venv, the package with its test
# extras. Safe to run again; it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# System tools the tests call: GNU grep (benchmark baseline), git, redis-server (the stack's own
# guardrail store, started and stopped by the tests), podman with runc and a static busybox (the
# container snapshot tests: a private podman API and an image built locally from busybox); apt
# package name per command.
declare -A APT_FOR=([grep]=grep [git]=git [redis-server]=redis-server [podman]=podman [runc]=runc)
missing=()
for cmd in "${!APT_FOR[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${APT_FOR[$cmd]}")
done
# The test image is FROM scratch: it needs the static busybox, not Debian's dynamic one.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
  missing+=(busybox-static)
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
# libvirt-python (the libvirt example DAG, later the libvirt hook) compiles against libvirt.
if ! pkg-config --exists libvirt 2>/dev/null; then
  missing+=(libvirt-dev pkg-config)
fi
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${missing[*]}" >&2
    exit 1
  fi
fi

stamp="$VENV/.faultcat-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/faultcat" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "bootstrap: installing airflow-faultcat and its test dependencies (first run takes a minute)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/faultcat" --help >/dev/null
echo "$want" > "$stamp"
