#!/bin/sh
# One node of the compose stack's Kafka (NODE_ID 1, 2 or 3) with SASL/SCRAM-SHA-512 and ACLs, as
# `tongcheng broker start --nodes 3` runs them:
# the admin's secret comes from the secrets file `tongcheng broker secrets` wrote into the shared
# volume; it is the controller listener's static PLAIN entry and the first SCRAM user, added when
# the storage is formatted (the other users and the ACLs come from `tongcheng topics apply`).
set -eu
secrets=/tongcheng/secrets/scram.json
secret=$(sed -n 's/^ *"admin": *"\([^"]*\)".*/\1/p' "$secrets")
if [ -z "$secret" ]; then
  echo "no admin secret in $secrets: run the secrets service first" >&2
  exit 1
fi
props=/tmp/server.properties
umask 077
cp /opt/tongcheng/server.properties "$props"
cat >> "$props" <<PROPS
node.id=$NODE_ID
advertised.listeners=CLIENT://kafka-$NODE_ID:9092
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$secret";
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$secret" user_admin="$secret";
PROPS
cat > /tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$secret";
PROPS
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$props" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=$secret]"
exec /opt/kafka/bin/kafka-server-start.sh "$props"
