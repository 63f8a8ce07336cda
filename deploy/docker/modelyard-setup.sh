#!/bin/sh
# First-run set-up of a modelyard deployment, run before the gateways start (compose's
# `setup` service, the Helm chart's gateway init container). Idempotent: a second run
# changes nothing, so it can run at every start.
#
#   MODELYARD_SETUP_BUNDLED     1 (default): import the bundled models not yet registered
#   MODELYARD_SETUP_ADMIN_KEY   name of the admin key created when no active key exists
#                               (default: admin; empty: none). Printed once, on stdout.
#   MODELYARD_SETUP_ALLOW       allow-list rules added before the first registration,
#                               separated by spaces: the networks the engines' host names
#                               resolve into (every resolved address must be allowed)
#   MODELYARD_SETUP_ENDPOINTS   remote engines to register, separated by spaces, each
#                               NAME,URL,SERVED_MODEL[,API_KEY_ENV]: the URL's host:port is
#                               added to the allow-list, then `modelyard models add-endpoint`
#                               (skipped when NAME is already registered)
#
# Runs under an exclusive lock on $MODELYARD_HOME/.setup.lock when flock(1) is there, so
# replicas that share the home do not both create the first admin key.
set -eu

: "${MODELYARD_HOME:?MODELYARD_HOME must be set}"
if [ -z "${MODELYARD_SETUP_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  MODELYARD_SETUP_LOCKED=1 exec flock "$MODELYARD_HOME/.setup.lock" sh "$0" "$@"
fi

if [ "${MODELYARD_SETUP_BUNDLED:-1}" = 1 ]; then
  modelyard models import --bundled
fi

key_name=${MODELYARD_SETUP_ADMIN_KEY-admin}
if [ -n "$key_name" ]; then
  active=$(modelyard keys list --json | python3 -c \
    'import json, sys; print(sum(1 for key in json.load(sys.stdin) if key["active"]))')
  if [ "$active" = 0 ]; then
    echo "setup: creating admin key '$key_name'; it is shown once, below:" >&2
    modelyard keys create "$key_name" --admin
  fi
fi

host_port() {  # http://host:port/path -> host:port (the scheme's port when none is given)
  python3 - "$1" <<'PY'
import sys
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
default = 443 if url.scheme == "https" else 80
host = f"[{url.hostname}]" if ":" in (url.hostname or "") else url.hostname
print(f"{host}:{url.port or default}")
PY
}

# exit 1 (a user error) from `endpoints allow` is a rule already there; a fault stops set-up
allow() {
  rc=0; modelyard endpoints allow "$1" || rc=$?
  if [ "$rc" -gt 1 ]; then exit "$rc"; fi
}

networks_allowed=0
for entry in ${MODELYARD_SETUP_ENDPOINTS:-}; do
  IFS=, read -r name url served key_env <<EOF
$entry
EOF
  if [ -z "$name" ] || [ -z "$url" ] || [ -z "$served" ]; then
    echo "setup: bad MODELYARD_SETUP_ENDPOINTS entry '$entry' (NAME,URL,SERVED_MODEL[,API_KEY_ENV])" >&2
    exit 2
  fi
  if modelyard models show "$name" --json >/dev/null 2>&1; then
    echo "setup: endpoint $name already registered" >&2
    continue
  fi
  # rules are added only when something is registered: a later `endpoints deny` stays
  if [ "$networks_allowed" = 0 ]; then
    for rule in ${MODELYARD_SETUP_ALLOW:-}; do allow "$rule"; done
    networks_allowed=1
  fi
  allow "$(host_port "$url")"
  if [ -n "${key_env:-}" ]; then  # the variable holding the engine's key (never printed)
    modelyard models add-endpoint "$name" --url "$url" --served-model "$served" \
      --api-key-env "$key_env"
  else
    modelyard models add-endpoint "$name" --url "$url" --served-model "$served"
  fi
  echo "setup: registered endpoint $name ($url); promote it like any version" >&2
done
