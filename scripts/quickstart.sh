#!/usr/bin/env bash
# Fresh machine -> a real random search on an embedded local Ray, printing the best trial.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tunehouse run search_spaces/quickstart.yaml "$@"
