#!/usr/bin/env bash
# Yunshu bootstrap: sets up everything on a fresh Debian machine, then runs an invoke task.
#   ./dev.sh up     create .venv, install, migrate var/ and start the control plane (embedded defaults)
#   ./dev.sh test   create .venv, install, install the test system packages, run every test
#   ./dev.sh lint   ruff
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  echo "dev.sh: installing Debian packages: $*" >&2
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The interpreter: Debian's own python3 where it is 3.11 or newer (built with profile-guided and link-time
# optimisation, libpython linked into the executable: parsing and detection measured 10-20% faster than on a
# default source build such as pyenv's, README "Performance"), else whichever python3 comes first on PATH.
interpreter() {
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo /usr/bin/python3
  else
    command -v python3
  fi
}

ensure_venv() {
  local python base
  python="$(interpreter)"
  base="$("$python" -c 'import sys; print(sys.base_prefix)')"
  if [ -x .venv/bin/python ] && [ "$(.venv/bin/python -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" != "$base" ]; then
    echo "dev.sh: .venv was made with another interpreter; making it again with $python" >&2
    rm -rf .venv
  fi
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      apt_install python3-venv
      "$python" -m venv .venv
    fi
  fi
  # the compiled hot path (setup.py, soc/native.py) needs a C compiler and the Python headers
  command -v gcc >/dev/null || apt_install gcc
  .venv/bin/python -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || apt_install python3-dev
  # Hyperscan's C API for detection's literal gates (soc/detect/hs_literals.pyx); Debian builds it for amd64 only,
  # elsewhere the gates call the hyperscan wheel (or pyahocorasick)
  if [ ! -e /usr/include/hs/hs.h ] && [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
    apt_install libhyperscan-dev || echo "dev.sh: libhyperscan-dev not installed: literal gates use the hyperscan wheel" >&2
  fi
  if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] || [ setup.py -nt .venv/.installed ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    touch .venv/.installed
  fi
}

ensure_test_packages() {
  local missing=()
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v runuser >/dev/null || missing+=(util-linux)
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
  # the network lab (issue 5): hosts in namespaces with sshd, dnsmasq for the zone, nginx as the web site
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null || missing+=(openssh-client)
  [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
  [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v dig >/dev/null || missing+=(dnsutils)
  command -v ping >/dev/null || missing+=(iputils-ping)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nft >/dev/null || missing+=(nftables)       # lab hosts' inet firewall (dual-stack playbook)
  [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)        # forwarding from on-boarded hosts; benchmark peer
  command -v curl >/dev/null || missing+=(curl)
  [ -e /usr/share/pam-configs/pwquality ] || missing+=(libpam-pwquality)  # lab hosts enforce password complexity
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_console_vendor() {
  # Browser libraries (Apache ECharts) come from npm at their pinned versions, never from the repository.
  local vendor=portal/static/vendor
  if [ -f "$vendor/node_modules/echarts/dist/echarts.min.js" ] && [ "$vendor/node_modules" -nt "$vendor/package-lock.json" ]; then
    return
  fi
  command -v npm >/dev/null || apt_install npm
  npm ci --prefix "$vendor" --no-audit --no-fund --loglevel=error
  touch "$vendor/node_modules"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up)   ensure_venv; .venv/bin/python -m soc.native_build; ensure_console_vendor; PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/yunshu up "$@" ;;
  test) ensure_venv; ensure_console_vendor; ensure_test_packages; PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/invoke test "$@" ;;
  lint) ensure_venv; PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/invoke lint ;;
  *) echo "usage: ./dev.sh up|test|lint" >&2; exit 2 ;;
esac
