#!/bin/sh
# The project's test command. On a fresh Linux machine with Node and root it
# installs what the tests need (Deno from npm; OpenSSH server, sudo, procps,
# less, python3, ncurses-bin, iproute2, curl, openssl, fish, tcsh, zsh,
# busybox, dropbear-bin from apt) when missing, then runs every check and
# test: deno task ok (fmt check, lint, type check, tests against a real sshd
# and a real Dropbear).
set -eu
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6

if ! command -v deno >/dev/null 2>&1; then
  echo "== installing deno@$DENO_VERSION from npm"
  npm install -g "deno@$DENO_VERSION"
fi
have=$(deno --version | head -n 1 | cut -d ' ' -f 2)
[ "$have" = "$DENO_VERSION" ] || echo "note: deno $have here; the project pins $DENO_VERSION"

missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
command -v sudo >/dev/null 2>&1 || missing="$missing sudo"
command -v ps >/dev/null 2>&1 || missing="$missing procps"
# The shell tests drive real programs as the test user, whose PATH is the
# system's: a pager, a REPL and tput.
[ -x /usr/bin/less ] || missing="$missing less"
[ -x /usr/bin/python3 ] || missing="$missing python3"
[ -x /usr/bin/tput ] || missing="$missing ncurses-bin"
# The port forwarding tests put an sshd and services in a network namespace
# (ip netns, a veth pair) and probe them with curl.
[ -x /bin/ip ] || [ -x /sbin/ip ] || command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl" # HTTPS tests make a self-signed certificate
# The login-shell tests give their accounts shells other than bash, and the
# server tests log in to Dropbear (tests/fixtures/dropbear.ts) as well as sshd.
[ -x /usr/bin/fish ] || missing="$missing fish"
[ -x /usr/bin/tcsh ] || missing="$missing tcsh"
[ -x /usr/bin/zsh ] || missing="$missing zsh"
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing="$missing busybox"
[ -x /usr/sbin/dropbear ] || missing="$missing dropbear-bin"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing$missing from apt"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    apt-get install -y -q $missing >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
  else
    echo "note: missing$missing and not root with apt-get: the sshd-backed tests will be skipped or fail"
  fi
fi

# As root the sshd-backed tests log in as their own account, mcp-remote-ssh-test, with a
# password and /etc/sudoers.d/mcp-remote-ssh-test; both are created when missing and removed
# when the tests end (tests/fixtures/account.ts). They never reconfigure an existing account of
# that name that they did not mark as theirs.
export NO_COLOR=1
exec deno task ok
