#!/bin/sh
# The one-shot `setup` service of docker-compose.yml (busybox sh in
# teleport-distroless-debug, next to the Auth Service):
#   1. teleport-fluent-bit configure, once: the mTLS material for the
#      Fluent Bit -> Fluentd link and every configuration file, into the
#      `config` volume (the Fluent Bit configuration docker compose runs,
#      deploy/fluent-bit/fluent-bit.yaml, is what this command writes);
#      start-time is now, just before the events of steps 2 and 3, so the
#      plugin's first run exports them and Fluentd prints them at once
#      (later runs resume from the cursor: nothing is sent twice);
#   2. the Teleport role and user (tctl create);
#   3. an identity for the plugin (tctl auth sign), renewed on every run.
set -eu
DIR=/etc/teleport-fluent-bit

if [ ! -e "$DIR/teleport-fluent-bit.toml" ]; then
  teleport-fluent-bit configure /etc/teleport-fluent-bit teleport:3025 --length 2048 --dns-names fluentd,localhost --fluentd fluentd:24224 --plugin /fluent-bit/plugins/in_teleport.so --storage /var/lib/teleport-fluent-bit/state --buffer /var/lib/teleport-fluent-bit/buffer --lock --start-time now
fi

tctl create --force "$DIR/teleport-fluent-bit-role.yaml"
tctl auth sign --user=teleport-fluent-bit --format=file --out="$DIR/identity" --ttl=8760h --overwrite
chmod 600 "$DIR/identity"
echo "setup done: $DIR"
