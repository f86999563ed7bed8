#!/usr/bin/env bash
# Installs Prosody and ejabberd from Debian's packages when they are missing. Idempotent.
# No daemon is started here (the harness starts its own instances on loopback with temp configs);
# policy-rc.d keeps apt from starting the system services.
set -euo pipefail
need=()
command -v prosody >/dev/null 2>&1 || need+=(prosody)
command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || need+=(ejabberd)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing ${need[*]} from Debian packages" >&2
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages may have started system instances on their default ports; stop them.
$SUDO pkill -x prosody 2>/dev/null || true
$SUDO /usr/sbin/ejabberdctl stop >/dev/null 2>&1 || true
