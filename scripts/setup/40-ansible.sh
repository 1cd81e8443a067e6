# Ansible playbook tests: podman (with runc), debootstrap, a separate venv with ansible,
# ansible-lint and molecule, and a systemd-enabled Debian image built locally (no registry here).
# Sourced by scripts/setup.sh (apt_install and $SUDO come from there). Safe to re-run.
# shellcheck shell=bash

apt_install podman runc debootstrap uidmap

# Two settings podman needs on this kind of machine (see docs/DEPLOY.md): runc rather than crun
# ("cgroups in hybrid mode not supported"), and rlimits below the host's hard limits.
# Written only when the file is absent, so an operator's own file is left alone.
if [ ! -e /etc/containers/containers.conf ]; then
  echo "setup: writing /etc/containers/containers.conf (runtime=runc, default_ulimits)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee /etc/containers/containers.conf >/dev/null <<'CONF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]

[engine]
runtime = "runc"
CONF
fi

# Ansible lives in its own venv: it must not share dependencies with the application.
ANSIBLE_VENV="${ANSIBLE_VENV:-.venv-ansible}"
ANSIBLE_STAMP="$ANSIBLE_VENV/.installed-v1"
if [ ! -e "$ANSIBLE_STAMP" ]; then
  echo "setup: creating $ANSIBLE_VENV (ansible, ansible-lint, molecule, molecule-plugins[podman])"
  python3 -m venv "$ANSIBLE_VENV"
  # (grep drops pip's warnings about find-links/extra-index locations this machine may lack)
  "$ANSIBLE_VENV/bin/pip" install -q --upgrade pip 2> >(grep -v 'is ignored: it is neither' >&2)
  "$ANSIBLE_VENV/bin/pip" install -q \
    'ansible>=10,<13' 'ansible-lint>=24.7' 'molecule>=24.9' 'molecule-plugins[podman]>=23.5' \
    2> >(grep -v 'is ignored: it is neither' >&2)
  touch "$ANSIBLE_STAMP"
fi

# A systemd-enabled Debian 12 image for molecule, built with debootstrap from apt's own mirror.
MOLECULE_IMAGE="${MOLECULE_IMAGE:-localhost/debian-systemd:bookworm}"
if ! $SUDO podman image exists "$MOLECULE_IMAGE"; then
  mirror="$(
    {
      grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}' || true
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' || true
    } | grep -E '/debian/?$' | head -n1
  )" || true
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "setup: building $MOLECULE_IMAGE with debootstrap from $mirror (about a minute)"
  rootfs="$(mktemp -d /var/tmp/debian-systemd.XXXXXX)"
  # shellcheck disable=SC2064
  trap "$SUDO umount -l '$rootfs/proc' 2>/dev/null || true; $SUDO rm -rf '$rootfs'" EXIT
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  $SUDO mount -t proc proc "$rootfs/proc"
  $SUDO chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends \
    systemd systemd-sysv dbus python3 python3-apt sudo iproute2 ca-certificates >/dev/null
  $SUDO chroot "$rootfs" apt-get clean
  $SUDO umount "$rootfs/proc"
  # Nothing from the build host leaks into the image.
  $SUDO rm -f "$rootfs/etc/machine-id" && $SUDO touch "$rootfs/etc/machine-id"
  $SUDO tar -C "$rootfs" -c . | $SUDO podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$MOLECULE_IMAGE" >/dev/null
  $SUDO rm -rf "$rootfs"
  trap - EXIT
  echo "setup: $MOLECULE_IMAGE built"
fi
