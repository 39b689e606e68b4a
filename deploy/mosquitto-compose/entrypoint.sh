#!/bin/sh
# Write the password file from the environment, then run mosquitto (drops to user mosquitto).
set -eu
: "${MQTT_USERNAME:?set MQTT_USERNAME}"
: "${MQTT_PASSWORD:?set MQTT_PASSWORD}"
umask 077
passwd_file=/mosquitto/data/passwd
rm -f "$passwd_file"
mosquitto_passwd -b -c "$passwd_file" "$MQTT_USERNAME" "$MQTT_PASSWORD"
chown mosquitto:mosquitto "$passwd_file" 2>/dev/null || true
exec mosquitto -c /mosquitto/config/mosquitto.conf
