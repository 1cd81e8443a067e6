# Containers (`make up`, `make images`, the e2e test): podman with runc, debootstrap for the
# offline base image, and podman-compose in its own venv (.venv-compose). Docker users with
# `docker compose` need none of this. Sourced by scripts/setup.sh (apt_install and $SUDO come
# from there); safe to re-run, and safe next to scripts/setup/40-ansible.sh, which may write
# the same containers.conf settings.
# shellcheck shell=bash

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 \
  && docker info >/dev/null 2>&1 && [ -z "${TRADEROPS_ENGINE:-}" ]; then
  echo "setup: docker compose with a running engine found; skipping podman set-up"
else
  apt_install podman runc debootstrap uidmap slirp4netns
  # Name resolution between containers: Debian 12's podman 4.3 uses CNI, whose networks only
  # get DNS with the dnsname plugin (netavark has aardvark-dns built in).
  if [ "$($SUDO podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" = cni ]; then
    apt_install golang-github-containernetworking-plugin-dnsname
  fi

  # Two settings podman needs on this kind of machine (docs/CONTAINERS.md): runc rather than
  # crun ("cgroups in hybrid mode not supported"), and rlimits below the host's hard limits
  # (rootful containers otherwise fail with "setrlimit ... operation not permitted").
  # Each setting is added only when the file does not set it already: an operator's own
  # values (or the ones 40-ansible.sh wrote) are left alone.
  conf="${CONTAINERS_CONF:-/etc/containers/containers.conf}"
  $SUDO mkdir -p /etc/containers
  [ -e "$conf" ] || $SUDO touch "$conf"
  _conf_has() { grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$conf"; }
  _conf_add() { # _conf_add SECTION LINE : append LINE under [SECTION] (creating the section)
    local section="$1" line="$2" tmp
    tmp="$(mktemp)"
    if grep -Eq "^[[:space:]]*\[$section\]" "$conf"; then
      awk -v s="[$section]" -v l="$line" '
        { print }
        !done && $0 ~ "^[[:space:]]*\\[" && index($0, s) { print l; done = 1 }
      ' "$conf" >"$tmp"
    else
      { cat "$conf"; printf '\n[%s]\n%s\n' "$section" "$line"; } >"$tmp"
    fi
    $SUDO cp "$tmp" "$conf" && rm -f "$tmp"
  }
  if ! _conf_has default_ulimits; then
    echo "setup: $conf: adding [containers] default_ulimits"
    _conf_add containers 'default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]'
  fi
  if ! _conf_has runtime; then
    echo "setup: $conf: adding [engine] runtime = \"runc\""
    _conf_add engine 'runtime = "runc"'
  fi
  unset -f _conf_has _conf_add

  # podman-compose in its own venv: never in the application's .venv.
  if ! docker compose version >/dev/null 2>&1 && ! podman compose version >/dev/null 2>&1 \
    && ! command -v podman-compose >/dev/null 2>&1; then
    COMPOSE_VENV="${COMPOSE_VENV:-.venv-compose}"
    if [ ! -x "$COMPOSE_VENV/bin/podman-compose" ]; then
      echo "setup: creating $COMPOSE_VENV (podman-compose)"
      python3 -m venv "$COMPOSE_VENV"
      "$COMPOSE_VENV/bin/pip" install -q --upgrade pip 2> >(grep -v 'is ignored: it is neither' >&2)
      "$COMPOSE_VENV/bin/pip" install -q 'podman-compose>=1.2,<2' 2> >(grep -v 'is ignored: it is neither' >&2)
    fi
  fi
fi
