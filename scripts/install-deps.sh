#!/usr/bin/env bash
# Installs everything the project needs to build, test and demo, from Debian 12's packages.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libcurl4-openssl-dev libssl-dev zlib1g-dev libdeflate-dev libisal-dev liblzma-dev libzstd-dev \
  libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libqcow-dev libyaml-cpp-dev \
  libsnappy-dev golang-go golang-github-golang-snappy-dev nlohmann-json3-dev \
  nginx-light qemu-utils openssl curl xz-utils zstd gzip python3 python3-botocore util-linux tinyproxy \
  docker-registry skopeo apache2-utils
