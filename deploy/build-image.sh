#!/usr/bin/env bash
# Build the story server's image with podman, on a machine without a Docker daemon or a reachable registry.
#
#   deploy/build-image.sh [CONTEXT] [EXTRA PODMAN BUILD ARGS...]     (make image-podman)
#
# CONTEXT (default: the repository root) holds the Dockerfile, requirements-serve.txt, aitale/,
# models/onnx (dvc repro's export stage) and models/safety (the content screen).
#
# Settings, from the environment:
#   IMAGE          the tag to build (default: localhost/aitale-serve)
#   BASE_IMAGE     the Python base; default: localhost/bookworm-py311, a minimal Debian bookworm with python3,
#                  made here with debootstrap the first time (needs root). Where a registry can be reached,
#                  BASE_IMAGE=docker.io/library/python:3.11-slim builds on the official slim image instead.
#   DEBIAN_MIRROR  the mirror debootstrap downloads from (default: debootstrap's own, deb.debian.org)
#   MODEL_VERSION  the version /v1/models reports (default: the gto tag storyteller@vX at HEAD, if any)
#
# Needs podman, and debootstrap for the default base: on Debian or Ubuntu, as root,
#   apt-get update && apt-get install -y podman debootstrap
# With Docker, `make image` (docker build -t aitale-serve .) builds the same Dockerfile.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
context=$(cd "${1:-$here/..}" && pwd)
shift $(($# > 0 ? 1 : 0))
image=${IMAGE:-localhost/aitale-serve}
local_base=localhost/bookworm-py311
base=${BASE_IMAGE:-$local_base}

die() {
    echo "build-image.sh: $*" >&2
    exit 1
}

command -v podman >/dev/null || die "podman is not installed: apt-get install -y podman debootstrap (as root)"
for needed in Dockerfile requirements-serve.txt aitale/serve/__main__.py models/onnx/manifest.json models/safety; do
    [[ -e "$context/$needed" ]] || die "$context/$needed is missing (models/ comes from \`dvc repro\`)"
done

if [[ "$base" == "$local_base" ]] && ! podman image exists "$base"; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install -y debootstrap (as root)"
    [[ $(id -u) == 0 ]] || die "debootstrap needs root to make the base image $base (or set BASE_IMAGE)"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    echo "build-image.sh: making the base image $base with debootstrap (about a minute)"
    # minbase: dpkg, apt, coreutils and the passwd tools (useradd, which the Dockerfile runs) and no more.
    mirror=()
    [[ -n "${DEBIAN_MIRROR:-}" ]] && mirror=("$DEBIAN_MIRROR")
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "${mirror[@]}" >/dev/null
    # The downloaded .debs and package lists are half the size of the tree, and no build step uses apt.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --quiet - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# --pull=never for the local base: there is no registry to ask. Another base is pulled if it is not here.
pull=missing
[[ "$base" == "$local_base" ]] && pull=never

version=${MODEL_VERSION:-}
if [[ -z "$version" ]] && git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
    tag=$(git -C "$here" tag --points-at HEAD --list 'storyteller@*' | sort | tail -n 1)
    version=${tag#storyteller@}
fi

build=(
    podman build
    # chroot isolation: podman's default OCI runtime refuses hybrid cgroups (the project's machines have them)
    --isolation=chroot
    --pull="$pull"
    # the host's network, so that pip inside the build reaches the package index as the host's pip does
    --network=host
    # docker format: the OCI format has no HEALTHCHECK, and podman would drop it with a warning
    --format=docker
    --build-arg "BASE_IMAGE=$base"
    --build-arg "MODEL_VERSION=$version"
    --file "$context/Dockerfile"
    --tag "$image"
)
# The host's CA bundle: Debian's pip trusts the system store, which the minimal base does not have.
[[ -d /etc/ssl/certs ]] && build+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro)

began=$SECONDS
"${build[@]}" "$@" "$context"
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "build-image.sh: built $image on $base in $((SECONDS - began))s, $((size / 1000000)) MB"
# podman run does not work on every machine (it does not on the project's: setrlimit and cgroup errors);
# the image's filesystem can be run instead: see tests/test_container.py.
