#!/bin/sh
# keycloak/provider/build.sh KEYCLOAK_HOME OUT_JAR — compiles edgeguard's
# Keycloak provider (the authenticators under src/, registered through
# resources/META-INF/services) against the jars of the Keycloak it will run
# in (KEYCLOAK_HOME/lib/lib/{main,boot}) and writes OUT_JAR. Needs a JDK ≥ 17 (javac,
# jar); nothing is downloaded. Used by scripts/keycloak.sh and
# docker/Dockerfile.keycloak.
set -eu
home=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
find "$here/src" -name '*.java' >"$tmp/sources"
javac --release 17 -Xlint:all -Werror -proc:none -encoding UTF-8 \
	-cp "$home/lib/lib/main/*:$home/lib/lib/boot/*" -d "$tmp/classes" @"$tmp/sources"
cp -R "$here/resources/." "$tmp/classes/"
mkdir -p "$(dirname "$out")"
jar --create --file "$out.part" --no-manifest -C "$tmp/classes" .
mv "$out.part" "$out"
