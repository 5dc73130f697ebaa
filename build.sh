#!/usr/bin/env bash
# Restores Cake from the local tool manifest and runs build.cake with the arguments given
# (e.g. ./build.sh --target=Test).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
dotnet tool restore >/dev/null
exec dotnet cake build.cake "$@"
