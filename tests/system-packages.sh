#!/usr/bin/env bash
# Install the system programs the test suite runs, with apt-get, when they are missing.
#
# README's test command calls this first, so a fresh Debian/Ubuntu machine needs nothing
# else. Each program is looked for on PATH (PostgreSQL also in /usr/lib/postgresql/*/bin);
# only missing ones are installed. Without root (or sudo) or apt-get, it says what to
# install and exits 1.
set -euo pipefail

# program  Debian package  why the tests need it
needs=(
  "initdb         postgresql      integration tests start their own PostgreSQL"
  "redis-server   redis-server    integration tests start their own Redis"
  "openssl        openssl         signatures are checked against openssl cms/ts"
  "pdfsig         poppler-utils   signed PDFs are checked against pdfsig"
  "certutil       libnss3-tools   pdfsig trusts the test CA through an NSS database"
  "crlutil        libnss3-tools   pdfsig reads the test CRL from the NSS database"
  "dot            graphviz        the state machines' Graphviz text is parsed by dot"
)

have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$1" = initdb ] && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  return 1
}

missing=()
for line in "${needs[@]}"; do
  read -r program package _why <<<"$line"
  if ! have "$program" && [[ " ${missing[*]-} " != *" $package "* ]]; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

if [ "${EUID:-$(id -u)}" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  sudo=(none)
fi

if ! command -v apt-get >/dev/null 2>&1 || [ "${sudo[0]-}" = none ]; then
  echo "The tests need these system packages, which are not installed:" >&2
  for line in "${needs[@]}"; do
    read -r program package why <<<"$line"
    have "$program" || printf '  %-14s (%s): %s\n' "$package" "$program" "$why" >&2
  done
  echo "Install them as root, e.g.: apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
for line in "${needs[@]}"; do
  read -r program package _why <<<"$line"
  if ! have "$program"; then
    echo "$package was installed but $program is still not found" >&2
    exit 1
  fi
done
echo "system packages: installed ${missing[*]}"
