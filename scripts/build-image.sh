#!/usr/bin/env bash
# Builds the importer image with podman or docker, then runs its smoke test
# (scripts/image-smoke-test.sh). Not part of CI: for admins and releases.
#
#   scripts/build-image.sh [--overlay] [--tag NAME] [--engine podman|docker]
#                          [--base pull|mmdebstrap|IMAGE] [--cdi-image IMAGE] [--no-smoke-test]
#
#   --overlay        build Containerfile.cdi-overlay (with CDI's importer and
#                    helpers) instead of Containerfile
#   --tag NAME       the image's name (default localhost/cdi-importer:VERSION,
#                    or ...:VERSION-cdi for the overlay)
#   --engine E       podman or docker (default: podman when installed)
#   --base B         the Debian 12 base of both stages:
#                      pull        docker.io/library/debian:12-slim from its registry
#                      mmdebstrap  made here: `mmdebstrap --variant=minbase bookworm`
#                                  from this machine's apt sources, imported as
#                                  localhost/debian:12-minbase (for hosts that reach
#                                  Debian's package mirrors but no registry)
#                      IMAGE       any image already there
#                    default: pull when the registry answers, else mmdebstrap
#   --cdi-image I    CDI's importer image for the overlay (its ARG's default otherwise)
#   --no-smoke-test  build only
#
# Environment: IMAGE_ENGINE_FLAGS, extra global flags for the engine (for
# example "--runtime runc"); IMAGE_BUILD_NETWORK, the network of the build's
# RUN steps (default host, so that apt-get reaches the mirror the host uses).
#
# Exit codes: 0 built (and smoke-tested), 1 the build or the smoke test
# failed, 2 bad usage or a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

overlay=no tag= engine= base= cdi_image= smoke=yes
while [ $# -gt 0 ]; do
  case $1 in
    --overlay) overlay=yes ;;
    --tag) tag=${2:?--tag needs a name}; shift ;;
    --engine) engine=${2:?--engine needs podman or docker}; shift ;;
    --base) base=${2:?--base needs pull, mmdebstrap or an image}; shift ;;
    --cdi-image) cdi_image=${2:?--cdi-image needs an image}; shift ;;
    --no-smoke-test) smoke=no ;;
    -h|--help) usage ;;
    *) echo "build-image.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done

if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else echo "build-image.sh: neither podman nor docker is installed" >&2; exit 2
  fi
fi
command -v "$engine" >/dev/null || { echo "build-image.sh: $engine is not installed" >&2; exit 2; }
engine_flags=(${IMAGE_ENGINE_FLAGS:-})
e() { "$engine" "${engine_flags[@]}" "$@"; }

version=$(sed -n 's/^project(CdiImporter VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
containerfile=Containerfile
[ "$overlay" = yes ] && containerfile=Containerfile.cdi-overlay
if [ -z "$tag" ]; then
  tag=localhost/cdi-importer:$version
  [ "$overlay" = yes ] && tag=$tag-cdi
fi

# The Debian base.
slim=docker.io/library/debian:12-slim
minbase=localhost/debian:12-minbase
if [ -z "$base" ]; then
  if e image exists "$slim" 2>/dev/null || e image inspect "$slim" >/dev/null 2>&1; then
    base=$slim
  elif timeout 60 "$engine" "${engine_flags[@]}" pull -q "$slim" >/dev/null 2>&1; then
    base=$slim
  else
    echo "::: $slim cannot be pulled: making the base with mmdebstrap"
    base=mmdebstrap
  fi
fi
case $base in
  pull)
    e pull "$slim"
    base=$slim ;;
  mmdebstrap)
    command -v mmdebstrap >/dev/null || {
      echo "build-image.sh: --base mmdebstrap needs mmdebstrap (apt-get install mmdebstrap)" >&2
      exit 2
    }
    if ! e image inspect "$minbase" >/dev/null 2>&1; then
      work=$(mktemp -d)
      trap 'rm -rf "$work"' EXIT
      # This machine's apt sources: the mirror it reaches, also inside the build.
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
        2>/dev/null >"$work/sources" || true
      [ -s "$work/sources" ] || { echo "build-image.sh: no apt sources on this machine" >&2; exit 2; }
      echo "::: mmdebstrap --variant=minbase bookworm (a minimal Debian 12)"
      mmdebstrap --variant=minbase --quiet bookworm "$work/base.tar" - <"$work/sources"
      e import --change 'CMD ["/bin/bash"]' "$work/base.tar" "$minbase" >/dev/null
      echo "::: imported as $minbase ($(du -h "$work/base.tar" | cut -f1) of files)"
    fi
    base=$minbase ;;
esac

echo "::: $engine build -f $containerfile -t $tag (base $base)"
build_args=(--build-arg "DEBIAN_IMAGE=$base")
[ -n "$cdi_image" ] && build_args+=(--build-arg "CDI_IMPORTER_IMAGE=$cdi_image")
e build --network "${IMAGE_BUILD_NETWORK:-host}" "${build_args[@]}" -f "$containerfile" -t "$tag" .
echo "::: built $tag: $(e image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }')"

if [ "$smoke" = yes ]; then
  smoke_args=()
  [ "$overlay" = yes ] && smoke_args+=(--overlay)
  IMAGE_ENGINE_FLAGS="${IMAGE_ENGINE_FLAGS:-}" scripts/image-smoke-test.sh "${smoke_args[@]}" "$engine" "$tag"
fi
