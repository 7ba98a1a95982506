#!/bin/bash
# Stops what start-ceph.sh DIR started (gateway, OSD, monitor), by the pids in DIR/run, and waits for them.
# Usage: stop-ceph.sh DIR
set -u
D=${1:?usage: stop-ceph.sh DIR}
pids=()
for f in "$D"/run/client.rgw.pid "$D"/run/osd.*.pid "$D"/run/mon.*.pid; do
  if [ -f "$f" ]; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && pids+=("$pid")
  fi
done
for _ in $(seq 1 40); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && exit 0
  sleep 0.25
done
for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
exit 0
