#!/usr/bin/env bash
# Bootstrap a Docker engine and the project's local images on a Debian host without a registry.
#
# Steps (each skipped when already done, so a second run is a quick no-op):
#   1. engine: when `docker info` does not answer, install Debian's docker.io (and debootstrap,
#      openssh-server/-client, iproute2, procps) and start dockerd in the background; there is
#      no systemd in CI, and no image can be pulled, hence the two builds below.
#   2. base:   cloudeval/base:bookworm = debootstrap minbase + python3, imported with `docker import`.
#   3. runner: cloudeval/runner:bookworm from docker/runner.Dockerfile, rebuilt when the Dockerfile
#              or the base image changed (both recorded as labels on the image).
#
# Usage: scripts/setup-docker.sh [--no-images] [--rebuild] [--help]
# Environment overrides (defaults in brackets):
#   CLOUDEVAL_BASE_IMAGE [cloudeval/base:bookworm]     CLOUDEVAL_RUNNER_IMAGE [cloudeval/runner:bookworm]
#   CLOUDEVAL_DEBIAN_MIRROR [http://deb.debian.org/debian]  CLOUDEVAL_DEBIAN_SUITE [bookworm]
#   CLOUDEVAL_DOCKERD_LOG [/var/log/dockerd.log]        CLOUDEVAL_DOCKERD_WAIT [60] (seconds)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${CLOUDEVAL_BASE_IMAGE:-cloudeval/base:bookworm}"
RUNNER_IMAGE="${CLOUDEVAL_RUNNER_IMAGE:-cloudeval/runner:bookworm}"
RUNNER_DOCKERFILE="${REPO_ROOT}/docker/runner.Dockerfile"
DEBIAN_MIRROR="${CLOUDEVAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SUITE="${CLOUDEVAL_DEBIAN_SUITE:-bookworm}"
DOCKERD_LOG="${CLOUDEVAL_DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT="${CLOUDEVAL_DOCKERD_WAIT:-60}"
ENGINE_PACKAGES=(docker.io debootstrap openssh-server openssh-client iproute2 procps)

WANT_IMAGES=1
REBUILD=0
APT_UPDATED=0
CLEANUP_PATHS=()
SCRIPT_START="$(date +%s.%N)"

usage() {
  # The header comment (line 2 up to the first non-comment line) is the help text.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

log() { printf '[setup-docker] %s\n' "$*" >&2; }
die() { printf '[setup-docker] ERROR: %s\n' "$*" >&2; exit 1; }

# Seconds elapsed since the timestamp given (date +%s.%N), with one decimal.
elapsed_since() {
  awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# Run a command as root: directly when we are root, else through passwordless sudo.
as_root() {
  if [[ "${EUID}" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

cleanup() {
  local path
  for path in "${CLEANUP_PATHS[@]+"${CLEANUP_PATHS[@]}"}"; do
    as_root rm -rf "${path}" 2>/dev/null || true
  done
}

docker_answers() { docker info >/dev/null 2>&1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Install the Debian packages given that are not installed yet (apt-get update at most once per run).
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"
  local t0
  t0="$(date +%s.%N)"
  if [[ "${APT_UPDATED}" -eq 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "packages installed in $(elapsed_since "${t0}")s"
}

# Step 1: a Docker engine that answers `docker info`.
ensure_engine() {
  local t0
  t0="$(date +%s.%N)"
  if docker_answers; then
    log "engine: docker info answers (server $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')), nothing to do"
    return 0
  fi
  log "engine: docker info does not answer; installing/starting the engine"
  ensure_packages "${ENGINE_PACKAGES[@]}"
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"

  # A daemon may already be starting (or hung): only start one when none runs, so reruns
  # never stack daemons fighting over /var/run/docker.pid.
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "engine: a dockerd process already runs; waiting for it to answer"
  else
    log "engine: starting dockerd in the background (log: ${DOCKERD_LOG})"
    as_root mkdir -p "$(dirname "${DOCKERD_LOG}")"
    # setsid: detach from this shell's session so the daemon survives the script (and CI step) ending.
    as_root sh -c "setsid dockerd >>'${DOCKERD_LOG}' 2>&1 < /dev/null &"
  fi

  local deadline=$((SECONDS + DOCKERD_WAIT))
  until docker_answers; do
    if ((SECONDS >= deadline)); then
      log "engine: dockerd did not answer within ${DOCKERD_WAIT}s; last lines of ${DOCKERD_LOG}:"
      as_root tail -n 40 "${DOCKERD_LOG}" >&2 || true
      die "Docker engine is not available"
    fi
    sleep 0.5
  done
  log "engine: ready in $(elapsed_since "${t0}")s"
}

# Step 2: the base image, from Debian's own packages (no registry needed).
build_base_image() {
  local tag="$1"
  ensure_packages debootstrap
  local workdir rootfs t0
  workdir="$(mktemp -d /var/tmp/cloudeval-rootfs.XXXXXX)"
  rootfs="${workdir}/rootfs"
  # The rootfs holds root-owned device nodes etc.; removed on success and on failure (EXIT trap).
  CLEANUP_PATHS+=("${workdir}")
  t0="$(date +%s.%N)"
  log "base: debootstrap --variant=minbase --include=python3 ${DEBIAN_SUITE} (${DEBIAN_MIRROR})"
  # python3, not python3-minimal: the minimal one lacks json/queue/unittest and breaks execnet.
  if ! as_root debootstrap --variant=minbase --include=python3 "${DEBIAN_SUITE}" "${rootfs}" "${DEBIAN_MIRROR}" \
      >"${workdir}/debootstrap.log" 2>&1; then
    tail -n 30 "${workdir}/debootstrap.log" >&2 || true
    die "debootstrap failed"
  fi
  log "base: debootstrap done in $(elapsed_since "${t0}")s"
  # Downloaded .debs and package lists only make the image bigger; Dockerfiles run apt-get update.
  as_root sh -c "rm -rf '${rootfs}'/var/cache/apt/archives/*.deb '${rootfs}'/var/lib/apt/lists/* '${rootfs}'/debootstrap"
  t0="$(date +%s.%N)"
  as_root tar -C "${rootfs}" -c . | docker import \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.description=\"Debian ${DEBIAN_SUITE} minbase + python3 (pytest-cloudeval)\"" \
    - "${tag}" >/dev/null
  as_root rm -rf "${workdir}"
  log "base: imported ${tag} in $(elapsed_since "${t0}")s ($(docker image inspect --format '{{.Size}}' "${tag}" | awk '{printf "%.0f MB", $1/1e6}'))"
}

ensure_base_image() {
  if image_exists "${BASE_IMAGE}" && [[ "${REBUILD}" -eq 0 ]]; then
    log "base: ${BASE_IMAGE} present, reusing it"
    return 0
  fi
  local t0
  t0="$(date +%s.%N)"
  build_base_image "${BASE_IMAGE}"
  log "base: ${BASE_IMAGE} ready in $(elapsed_since "${t0}")s"
}

# Step 3: the runner image; its labels record what it was built from, to know when it is stale.
ensure_runner_image() {
  [[ -f "${RUNNER_DOCKERFILE}" ]] || die "missing ${RUNNER_DOCKERFILE}"
  local want_hash base_id have_hash="" have_base t0
  want_hash="$(sha256sum "${RUNNER_DOCKERFILE}" | cut -c1-64)"
  base_id="$(docker image inspect --format '{{.Id}}' "${BASE_IMAGE}")"
  if image_exists "${RUNNER_IMAGE}" && [[ "${REBUILD}" -eq 0 ]]; then
    have_hash="$(docker image inspect --format '{{ index .Config.Labels "io.cloudeval.dockerfile-sha256" }}' "${RUNNER_IMAGE}")"
    have_base="$(docker image inspect --format '{{ index .Config.Labels "io.cloudeval.base-id" }}' "${RUNNER_IMAGE}")"
    if [[ "${have_hash}" == "${want_hash}" && "${have_base}" == "${base_id}" ]]; then
      log "runner: ${RUNNER_IMAGE} up to date (dockerfile ${want_hash:0:12}), reusing it"
      return 0
    fi
    log "runner: ${RUNNER_IMAGE} is stale (dockerfile ${have_hash:0:12} -> ${want_hash:0:12}, base changed: $([[ "${have_base}" == "${base_id}" ]] && echo no || echo yes))"
  fi
  t0="$(date +%s.%N)"
  log "runner: building ${RUNNER_IMAGE} from docker/runner.Dockerfile (BASE=${BASE_IMAGE})"
  local build_log
  build_log="$(mktemp)"
  CLEANUP_PATHS+=("${build_log}")
  # The context is docker/ (tiny); the Dockerfile copies nothing from it.
  if ! docker build --pull=false -q \
      -f "${RUNNER_DOCKERFILE}" \
      --build-arg "BASE=${BASE_IMAGE}" \
      --label "io.cloudeval.dockerfile-sha256=${want_hash}" \
      --label "io.cloudeval.base-id=${base_id}" \
      -t "${RUNNER_IMAGE}" \
      -t "${RUNNER_IMAGE%:*}:${want_hash:0:12}" \
      "${REPO_ROOT}/docker" >"${build_log}" 2>&1; then
    tail -n 40 "${build_log}" >&2 || true
    die "docker build of ${RUNNER_IMAGE} failed"
  fi
  rm -f "${build_log}"
  log "runner: built ${RUNNER_IMAGE} (+ ${RUNNER_IMAGE%:*}:${want_hash:0:12}) in $(elapsed_since "${t0}")s"
  # Drop the previous build's hash tag so stale runners do not pile up (kept if a container uses it).
  if [[ -n "${have_hash}" && "${have_hash}" != "${want_hash}" ]]; then
    docker rmi "${RUNNER_IMAGE%:*}:${have_hash:0:12}" >/dev/null 2>&1 || true
  fi
}

main() {
  trap cleanup EXIT
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --no-images) WANT_IMAGES=0 ;;
      --rebuild) REBUILD=1 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
  done
  ensure_engine
  # A real image registry on loopback for the Kubernetes tests (the emulator's pods pull from it).
  command -v docker-registry >/dev/null 2>&1 || ensure_packages docker-registry
  if [[ "${WANT_IMAGES}" -eq 1 ]]; then
    ensure_base_image
    ensure_runner_image
  else
    log "images: skipped (--no-images)"
  fi
  log "done in $(elapsed_since "${SCRIPT_START}")s"
}

# Sourcing the script (e.g. to run one step by hand) defines the functions without running main.
if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  main "$@"
fi
