#!/bin/bash
# Interleaved tcp_echo rounds, measured as ../shared/peers/compare's echo_run does (the server's
# CPU from /proc over one echo-load run of 640,000 round trips), for figures steadier than one
# compare run. Needs the peers compare has built (PEERS_BUILD, default /tmp/deja-peers); it is a
# developer's tool, not part of the build or the tests.
#
# usage: scripts/echo-rounds.sh ct|mt [rounds]   (DEJA_BENCH: the deja-bench binary)
set -uo pipefail
rt=${1:?usage: echo-rounds.sh ct|mt [rounds]}
rounds=${2:-3}
work=${PEERS_BUILD:-${TMPDIR:-/tmp}/deja-peers}
bench=${DEJA_BENCH:-build-release/bench/deja-bench}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo_run() {  # name, server command...
  local name=$1; shift
  local port=$((20000 + RANDOM % 12000))
  "$@" --port "$port" >"$out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  local before; before=$(cpu_ticks "$pid")
  local line; line=$("$work/echo-load" 127.0.0.1 "$port" 64 10000 64)
  local after; after=$(cpu_ticks "$pid")
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  local ns; ns=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", t / hz * 1e9 / 640000}')
  echo "$name $(grep -o 'rps=[0-9.]*' <<<"$line") server_cpu_ns_per_op=$ns"
}
for _ in $(seq "$rounds"); do
  echo_run floor-epoll "$work/raw-epoll-echo"
  echo_run "deja-$rt" "$bench" echo_server --rt "$rt"
  echo_run "deja-$rt-uring" "$bench" echo_server --rt "$rt" --io uring
  [ -x "$work/tokio/release/tokio-peer" ] && echo_run "tokio-$rt" "$work/tokio/release/tokio-peer" echo_server --rt "$rt"
done
