#!/usr/bin/env bash
# The long kill campaign: RUNS runs (default 1000) of flatline killed at random moments (KILL,
# TERM or INT to the process you start, the runner that is PID 1 of its namespace, or a peer;
# as root and, when root, also as nobody through a user namespace), AT_ONCE at a time (default
# 6). Prints the seed and the figures; fails if any run left a process, a namespace (and so a
# link or rule), a half-written record or a change to the host's network, or exited 0.
#   scripts/soak.sh [RUNS] [AT_ONCE]         replay one: FLATLINE_SEED=N scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FLATLINE_KILL_RUNS="${1:-1000}" FLATLINE_KILL_AT_ONCE="${2:-6}" \
    exec cargo test --test tests -- --exact trust::kill_campaign_leaves_nothing_behind --nocapture
