#!/usr/bin/env bash
# Tests for the production playbook (ansible/): syntax check, ansible-lint (production profile),
# and the molecule scenario (podman: converge, idempotence, verify). Exits non-zero on failure.
# Needs `bash scripts/setup.sh` (podman, .venv-ansible, the localhost/debian-systemd image).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

ANSIBLE_VENV="${ANSIBLE_VENV:-$ROOT/.venv-ansible}"
step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { echo "test-ansible: $*" >&2; exit 1; }

[ -x "$ANSIBLE_VENV/bin/ansible-playbook" ] || fail "$ANSIBLE_VENV missing: run bash scripts/setup.sh"
command -v podman >/dev/null || fail "podman is not installed: run bash scripts/setup.sh"
podman image exists localhost/debian-systemd:bookworm ||
  fail "image localhost/debian-systemd:bookworm missing: run bash scripts/setup.sh"

export PATH="$ANSIBLE_VENV/bin:$PATH"
export NO_COLOR=1 ANSIBLE_FORCE_COLOR=false PY_COLORS=0 ANSIBLE_NOCOLOR=1
export TRADEROPS_PIP_CACHE="${TRADEROPS_PIP_CACHE:-/var/cache/trader-ops-molecule/pip}"
mkdir -p "$TRADEROPS_PIP_CACHE"
export TRADEROPS_NPM_CACHE="${TRADEROPS_NPM_CACHE:-/var/cache/trader-ops-molecule/npm}"
mkdir -p "$TRADEROPS_NPM_CACHE"

# TradeNote's source for the tradenote role (built on the test host like on a real one): a
# tarball from TRADENOTE_SOURCE, else upstream's in shared/peers/tradenote next to the checkout
# (or /work/shared).
tradenote_source="${TRADENOTE_SOURCE:-}"
if [ -z "$tradenote_source" ]; then
  dir="$ROOT"
  while [ "$dir" != / ]; do
    dir="$(dirname "$dir")"
    if [ -f "$dir/shared/peers/tradenote/TradeNote-19.0.3.tar.gz" ]; then
      tradenote_source="$dir/shared/peers/tradenote/TradeNote-19.0.3.tar.gz"
      break
    fi
  done
  # this workplace's shared folder, for a clone made elsewhere (a CI checkout under /tmp)
  peer=/work/shared/peers/tradenote/TradeNote-19.0.3.tar.gz
  if [ -z "$tradenote_source" ] && [ -f "$peer" ]; then tradenote_source="$peer"; fi
fi
[ -f "$tradenote_source" ] ||
  fail "TradeNote's source tarball not found: set TRADENOTE_SOURCE to TradeNote-19.0.3.tar.gz"
export TRADEROPS_MOLECULE_TRADENOTE_SOURCE="$tradenote_source"
cd ansible
start=$SECONDS

step "ansible-playbook --syntax-check"
ansible-playbook --syntax-check -i inventories/example \
  --vault-password-file inventories/example/vault-password.example site.yml

step "ansible-lint --profile production"
ansible-lint --profile production --offline

step "building the trader-ops wheel for molecule"
wheel_dir="$(mktemp -d /tmp/trader-ops-wheel.XXXXXX)"
trap 'rm -rf "$wheel_dir"' EXIT
build_python="$ROOT/.venv/bin/python"
[ -x "$build_python" ] || build_python="$ANSIBLE_VENV/bin/python"
SOURCE_DATE_EPOCH=315532800 "$build_python" -m pip wheel --no-deps --quiet --wheel-dir "$wheel_dir" "$ROOT" \
  2> >(grep -v 'is ignored: it is neither' >&2)
TRADEROPS_MOLECULE_WHEEL="$(ls "$wheel_dir"/trader_ops-*.whl)"
export TRADEROPS_MOLECULE_WHEEL
echo "$TRADEROPS_MOLECULE_WHEEL"

step "molecule test (podman: converge, idempotence, verify)"
molecule_start=$SECONDS
molecule test
echo "molecule test took $((SECONDS - molecule_start)) s"

step "systemd-analyze security --offline of the canonical units"
for unit in "$ROOT"/deployment/systemd/trader-ops-*.service; do
  systemd-analyze security --offline=yes --threshold=20 --no-pager "$unit" | tail -n 1
done

step "all Ansible tests passed in $((SECONDS - start)) s"
