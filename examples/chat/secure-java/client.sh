#!/bin/sh
# The Java client, built if needed, then started (see run.sh, the server's):
#   lab-grade chat-client -- sh examples/chat/secure-java/client.sh {host} {port} {ca}
set -e
here="$(cd "$(dirname "$0")" && pwd)"
out="${TMPDIR:-/tmp}/chat-client-java"
if [ ! -f "$out/ChatClient.class" ]; then
    mkdir -p "$out"
    javac -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -d "$out" "$here/ChatClient.java"
fi
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$out" ChatClient "$@"
