#!/usr/bin/env bash
# Installs Prosody and ejabberd (and the few tools the tests and benchmarks use) from Debian's packages when they are missing. Idempotent; a no-op
# (no apt, no network) when both are present.
# No daemon is started here, and none is left running: the test harness (@xmppbus/testing) starts
# its own instances on 127.0.0.1 with generated configs in temp dirs.
set -euo pipefail

need=()
command -v prosody >/dev/null 2>&1 || [ -x /usr/bin/prosody ] || need+=(prosody)
[ -x /usr/sbin/ejabberdctl ] && [ -x /usr/bin/erl ] || need+=(ejabberd)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# Throwaway TLS certificates: the harness's `tls: true` (test CA + server certificates) and test/transports.test.ts.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# Prometheus scraping the telemetry exporter (test/telemetry-prometheus.test.ts starts its own binary).
[ -x /usr/bin/prometheus ] || need+=(prometheus)
# Headless browser for the IoT dashboard test (driven by puppeteer-core with the system executable).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The brokers the peers benchmark compares with (benchmarks/peers.ts starts its own instances).
[ -x /usr/sbin/nats-server ] || need+=(nats-server)
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-servers: missing ${need[*]}; this script only knows Debian/Ubuntu (apt-get)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "install-servers: installing ${need[*]} from Debian packages" >&2

# Keep apt from starting the system services (exit 101 = "action forbidden by policy").
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# If a system instance was started anyway (systemd ignores policy-rc.d), stop exactly that one:
# never by process name, which would also hit harness instances of parallel test runs. (No
# `ejabberdctl stop` either: with the packaged config it would spawn an epmd on 0.0.0.0:4369.)
if [ -f /run/prosody/prosody.pid ]; then
  $SUDO kill -TERM "$(cat /run/prosody/prosody.pid)" 2>/dev/null || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prosody ejabberd prometheus mosquitto nats-server >/dev/null 2>&1 || true
fi
