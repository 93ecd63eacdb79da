#!/usr/bin/env bash
# make demo: start the Teleport Auth Service stand-in on 127.0.0.1 with two
# days of backlog and a live stream of events, then load the plugin into a
# real fluent-bit when one is on PATH (else into the stand-in host) and print
# the records. Ctrl-C stops everything; run it again and it resumes where it
# stopped (the cursor lives in build/demo/storage).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/build/demo
mkdir -p "$demo"
chmod 700 "$demo"
rm -f "$demo/addr"

events=${DEMO_EVENTS:-2000}
rate=${DEMO_RATE:-5}
"$root/build/teleportd" --dir "$demo" --events "$events" --days 2 --rate "$rate" >"$demo/teleportd.log" 2>&1 &
auth=$!
trap 'kill $auth 2>/dev/null || true; wait $auth 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$demo/addr" ] && break; sleep 0.1; done
[ -s "$demo/addr" ] || { cat "$demo/teleportd.log"; echo "teleportd did not start" >&2; exit 1; }
addr=$(cat "$demo/addr")
start=$(date -u -d '3 days ago' +%Y-%m-%dT00:00:00Z)
echo "demo: Teleport stand-in at $addr ($events events of backlog, $rate/s live); storage $demo/storage" >&2

props=(-p "teleport_addr=$addr" -p "teleport_identity=$demo/identity" -p "storage_dir=$demo/storage"
       -p "start_time=$start" -p "poll_interval=1s")
if command -v fluent-bit >/dev/null 2>&1; then
  echo "demo: loading the plugin into $(command -v fluent-bit)" >&2
  fluent-bit -e "$root/build/in_teleport.so" -i teleport "${props[@]}" -o stdout -m '*' -f 1
else
  echo "demo: fluent-bit is not on PATH; loading the plugin into the stand-in host (build/flbhost), records as JSON lines" >&2
  "$root/build/flbhost" -e "$root/build/in_teleport.so" -i teleport "${props[@]}" --ingest /dev/stdout \
    | "$root/build/teleport-fluent-bit" dump
fi
