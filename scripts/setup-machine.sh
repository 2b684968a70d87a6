#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine to run FT Lab's whole test suite, so that `npm test` then
# passes and skips nothing but what the kernel itself lacks (listed at the end). .ci/run calls
# exactly this script, then the README's test command. Safe to run again: it installs only
# what is missing and says what it does.
#
#   scripts/setup-machine.sh            (as root, or a user with sudo)
#
# It does not install Node: FT Lab needs Node ^20.19.0 || ^22.13.0 || >=24 (ESLint 10's range),
# newer than Debian 12's own nodejs; it stops with what to do when Node is older.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

# What the tests use, by Debian package (the tests name the same package when it is missing):
#   OpenSSH server and client      the network-namespace testbed (scripts/testbed.sh) and deploy tests
#   nftables iptables iproute2     network faults, namespaces, netem (tc)
#   redis-tools redis-server       redis-cli / redis-benchmark against the kv guest; redis-server records its reference replies
#   python3-redis                  redis-py (4.3, for /usr/bin/python3) in the kv clients test, standing in for redis-py from PyPI
#   chromium                       the E2E tests (playwright-core drives it; no browser is downloaded)
#   procps psmisc                  process faults (pkill, fuser, ps)
#   etcd-server                    the etcd tie-breaker
#   openipmi ipmitool              the IPMI power driver against ipmi_sim
#   libvirt-clients                the libvirt power driver (virsh, test:///default)
PACKAGES=(openssh-server openssh-client nftables iptables iproute2 redis-tools redis-server python3-redis chromium procps psmisc etcd-server openipmi ipmitool libvirt-clients)

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup-machine: installing packages needs root; run this as root or install sudo" >&2
  exit 1
fi

say "Node (needs ^20.19.0 || ^22.13.0 || >=24)"
node_ok() {
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit((a===20&&b>=19)||(a===22&&b>=13)||a>=24?0:1)' 2>/dev/null
}
if ! node_ok; then
  echo "setup-machine: Node $(node --version 2>/dev/null || echo 'is missing') does not satisfy ^20.19.0 || ^22.13.0 || >=24." >&2
  echo "  Install a current Node (e.g. Node 22 LTS from nodejs.org, NodeSource or nvm), then run this again." >&2
  exit 1
fi
echo "Node $(node --version) at $(command -v node): ok"

say "apt packages"
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-machine: this script knows Debian/Ubuntu (dpkg, apt-get); install by hand: ${PACKAGES[*]}" >&2
  exit 1
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "all installed: ${PACKAGES[*]}"
else
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  # --no-install-recommends: no desktop or daemons the tests do not need
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
fi
# Debian's packages start redis-server and sshd as services: the tests start their own, on
# their own ports and in namespaces, so the system ones are left as the package set them up.

say "npm dependencies"
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "running npm ci (node_modules missing or older than package-lock.json)"
  npm ci --no-audit --no-fund
else
  echo "node_modules is up to date with package-lock.json"
fi

say "what only the kernel can lack (the tests skip these, also under CI=true, and say so)"
if [ -e /proc/sysrq-trigger ]; then echo "sysrq: present"; else echo "sysrq: absent (no /proc/sysrq-trigger): the sysrq power driver's real path is skipped"; fi
if [ -d /sys/module/sch_netem ] || modinfo sch_netem >/dev/null 2>&1; then
  echo "netem: present"
else
  echo "netem: absent (no sch_netem module): delay/loss faults take the agent-filter path instead"
fi

say "ready: run the tests with  npm test"
