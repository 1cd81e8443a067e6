# Web console (docs/CONSOLE.md): Debian's chromium for the headless browser tests in
# tests/browser (driven by the Playwright library with executable_path=/usr/bin/chromium;
# Playwright's own browser download is never used). Node/npm are only needed to rebuild
# the bundle (`make web`); the built bundle is committed, so running the datahub needs neither.
# Sourced by scripts/setup.sh (apt_install and $SUDO come from there). Safe to re-run.
# shellcheck shell=bash

command -v chromium >/dev/null || apt_install chromium
# node/npm may come from NodeSource (its nodejs bundles npm; Debian's npm would conflict)
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
(
  cd web
  if [ ! -x node_modules/.bin/esbuild ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm ci (lightweight-charts, esbuild) in web/"
    npm ci --no-audit --no-fund --loglevel=error
  fi
)
