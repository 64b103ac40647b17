#!/usr/bin/env bash
# Start the compose Qdrant server, wait until it is healthy, run the server tests, stop it.
#   scripts/test-server.sh            single node
#   scripts/test-server.sh cluster    the three-peer cluster
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-single}
if [ "$profile" = cluster ]; then
  compose=(docker compose --profile cluster)
  services=(node1 node2 node3)
  url=http://localhost:6343
else
  compose=(docker compose)
  services=(qdrant)
  url=http://localhost:6333
fi
"${compose[@]}" up -d "${services[@]}"
trap '"${compose[@]}" stop "${services[@]}"' EXIT
for _ in $(seq 1 60); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "$url/readyz" >/dev/null || { echo "Qdrant at $url did not become ready" >&2; exit 1; }
make .venv/.installed >/dev/null
FASHIONREC_QDRANT_URL=$url .venv/bin/python -m pytest -q -m server
