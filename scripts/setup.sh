#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running Rigbox:
#   system packages (QEMU, image tools, jail tools), npm dependencies, the guest image,
#   then `npm start` on embedded defaults (SQLite under ~/.rigbox, API on 127.0.0.1:8080).
# `scripts/setup.sh --no-start` installs everything and returns (CI uses that).
set -euo pipefail
cd "$(dirname "$0")/.."

start=1
for arg in "$@"; do
  case "$arg" in
    --no-start) start=0 ;;
    *) echo "usage: scripts/setup.sh [--no-start]" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# QEMU runs the VMs; qemu-utils makes the disks; mmdebstrap, e2fsprogs, busybox-static, cpio,
# kmod and lz4 build the guest image; bubblewrap and util-linux (setpriv) jail each QEMU;
# openssl makes the router's local CA; python3 runs each VM's inbound relay
# (src/vm/inbound-relay.py); python3-requests runs the seed documents' examples in the tests;
# openssh-client/-server and nginx serve the SSH tests and the router benchmark.
packages=(
  qemu-system-x86 qemu-utils mmdebstrap bubblewrap util-linux lz4 kmod e2fsprogs busybox-static
  cpio ca-certificates openssl python3 python3-requests openssh-client openssh-server nginx
  iproute2 procps
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "setup: Node.js 20 or newer is needed (found $(node --version))" >&2
  exit 1
fi
echo "setup: installing npm dependencies"
npm ci --no-audit --no-fund --loglevel=error

# The guest images are cached by a hash of their recipe: a second run finds them and returns at
# once. `dev` (base plus build tools) is what the web-fullstack template runs on.
echo "setup: building the guest images (first time: a few minutes)"
$SUDO npx tsx src/cli/main.ts image build base
$SUDO npx tsx src/cli/main.ts image build dev

if [ "$start" = 1 ]; then
  exec npm start
fi
