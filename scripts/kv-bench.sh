#!/usr/bin/env bash
# The kv example against Debian's redis-server on this machine, in one run: redis-benchmark
# -t ping,set,get -n N -c 50, without and with -P 16 pipelining, each server alone on one core's
# worth of work. Prints requests per second for both and deja-kv's ratio to redis-server.
# Usage: scripts/kv-bench.sh [requests]   (needs the Release deja-kv: make kv-bench builds it)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
kv=build-release/examples/deja-kv
[ -x "$kv" ] || { echo "kv-bench: $kv is missing; run make kv-bench" >&2; exit 1; }
kv_port=16390
redis_port=16391
for port in $kv_port $redis_port; do
  # A server left from an earlier run would be benchmarked in place of the new one.
  if redis-cli -p $port ping >/dev/null 2>&1; then echo "kv-bench: port $port is already served; stop that server first" >&2; exit 1; fi
done
"$kv" --port $kv_port > /tmp/deja-kv-bench.log 2>&1 &
kv_pid=$!
redis-server --port $redis_port --save "" --appendonly no --daemonize no > /tmp/redis-bench.log 2>&1 &
redis_pid=$!
# Killed and waited for, so that the ports are free for the next run as soon as this one ends.
trap 'kill $kv_pid $redis_pid 2>/dev/null || true; wait $kv_pid $redis_pid 2>/dev/null || true' EXIT
for port in $kv_port $redis_port; do
  for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
done
for pid in $kv_pid $redis_pid; do
  kill -0 "$pid" 2>/dev/null || { echo "kv-bench: a server did not start (see /tmp/deja-kv-bench.log, /tmp/redis-bench.log)" >&2; exit 1; }
done
bench() {  # port, extra args -> "TEST rps" lines
  redis-benchmark -p "$1" -t ping,set,get -n "$n" -c 50 ${2:-} -q 2>/dev/null | tr '\r' '\n' |
    sed -n 's/^\([A-Z_]*\): \([0-9.]*\) requests per second.*/\1 \2/p'
}
printf '%-24s %14s %14s %7s\n' "test (-n $n -c 50)" "deja-kv rps" "redis rps" "ratio"
for pipeline in "" "-P 16"; do
  paste <(bench $kv_port "$pipeline") <(bench $redis_port "$pipeline") | while read -r test a _ b; do
    if [ -z "$b" ] || [ "${b%%.*}" -eq 0 ]; then echo "kv-bench: no figure from redis-server for $test" >&2; exit 1; fi
    printf '%-24s %14.0f %14.0f %7.2f\n' "$test ${pipeline}" "$a" "$b" "$(echo "$a / $b" | bc -l)"
  done
done
