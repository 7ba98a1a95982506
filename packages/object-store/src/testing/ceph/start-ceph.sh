#!/bin/bash
# A throwaway single-node Ceph for tests: one monitor, one in-memory (memstore) OSD and one RADOS Gateway,
# authentication off between daemons, everything under DIR. Ready in about 1–2 s thanks to the short paxos
# intervals. Creates the S3 user ACCESS_KEY / SECRET_KEY.
# Usage: start-ceph.sh DIR RGW_PORT MON_PORT ACCESS_KEY SECRET_KEY
# Adapted from the team's shared tools/start-ceph.sh: free ports and the directory come from the caller,
# and nothing outside DIR is touched. Stop with stop-ceph.sh DIR.
set -euo pipefail
if [ $# -ne 5 ]; then echo "usage: $0 DIR RGW_PORT MON_PORT ACCESS_KEY SECRET_KEY" >&2; exit 2; fi
D=$1; RGWPORT=$2; MONPORT=$3; ACCESS=$4; SECRET=$5
case "$D" in /*) ;; *) echo "DIR must be absolute" >&2; exit 2;; esac
mkdir -p "$D"/{mon,osd,rgw,run,log}
newuuid() { cat /proc/sys/kernel/random/uuid; }
FSID=$(newuuid)
# The OSD gets a uuid of ours: registered without one, the OSD's own random uuid sometimes reaches the
# monitor first and its start fails with "wrong fsid: Operation not permitted".
OSDUUID=$(newuuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MONPORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms bind ipv6 = false
public addr = 127.0.0.1
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool delete = true
paxos propose interval = 0.01
paxos min wait = 0.001
mon osd auto mark in = true
[mon.a]
mon data = $D/mon
[osd]
# At start an OSD updates its CRUSH location and device class with mon commands; under load these can leave
# before its monitor client knows the cluster fsid, the monitor refuses them ("wrong fsid") and the OSD exits.
# The script places the OSD in the CRUSH map itself instead.
osd crush update on start = false
osd class update on start = false
[osd.0]
osd data = $D/osd
osd objectstore = memstore
memstore device bytes = 2147483648
osd journal size = 0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGWPORT
rgw data = $D/rgw
rgw dns name = localhost
CONF
C=(-c "$D/ceph.conf")
monmaptool --create --clobber --addv a "[v1:127.0.0.1:$MONPORT]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap"
ceph-mon "${C[@]}" -i a
# Another test's cluster may have been handed the same free port a moment earlier: make sure the monitor
# answering on ours is this cluster's, or an OSD would register with the wrong one ("wrong fsid").
if [ "$(timeout 20 ceph "${C[@]}" fsid 2>/dev/null)" != "$FSID" ]; then
  echo "monitor port $MONPORT answers for another cluster" >&2
  exit 3
fi
OSDID=$(ceph "${C[@]}" osd create "$OSDUUID")
ceph "${C[@]}" osd crush add "osd.$OSDID" 1.0 root=default >/dev/null 2>&1
ceph-osd "${C[@]}" -i "$OSDID" --mkfs --osd-uuid "$OSDUUID" >/dev/null 2>&1
ceph-osd "${C[@]}" -i "$OSDID"
up=0
for _ in $(seq 1 120); do
  if ceph "${C[@]}" osd stat 2>/dev/null | grep -q "1 up"; then up=1; break; fi
  sleep 0.25
done
if [ $up -ne 1 ]; then echo "the OSD did not come up; see $D/log" >&2; exit 1; fi
radosgw "${C[@]}" -n client.rgw
answering=0
for _ in $(seq 1 240); do
  if curl -s -o /dev/null "http://127.0.0.1:$RGWPORT/"; then answering=1; break; fi
  sleep 0.25
done
if [ $answering -ne 1 ]; then echo "radosgw did not answer on port $RGWPORT; see $D/log" >&2; exit 1; fi
radosgw-admin "${C[@]}" user create --uid=test --display-name=test \
  --access-key="$ACCESS" --secret="$SECRET" >/dev/null
echo "ready http://127.0.0.1:$RGWPORT"
