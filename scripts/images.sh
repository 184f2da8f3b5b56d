#!/usr/bin/env bash
# Builds the images used by the tests and the demo, offline, and pushes them
# to the local registry ($REGISTRY):
#   local/debian:bookworm        debootstrap minbase + docker import (also
#                                pushed as $REGISTRY/debian:bookworm)
#   $REGISTRY/demo-app:v1 :v2 :broken :bad-migration   images/demo-app
#   $REGISTRY/postgres:15        images/postgres
#   $REGISTRY/redis:7.0 :7.2 :broken   images/redis
#   $REGISTRY/nginx:1            images/nginx
# Needs the engine and the registry (docker-engine.sh start, registry.sh start).
# Re-runs are fast: the rootfs tarball is cached in $RUNBOOK_HOME/cache keyed
# by the hash of images/debian/mkrootfs.sh, Docker's build cache lives in the
# engine's persistent data root, and pushes are skipped when the registry
# already serves the same manifest digest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IMAGES_DIR=$RUNBOOK_REPO/images
CACHE=$RUNBOOK_HOME/cache
BASE=local/debian:bookworm
BUILD_LOG=$RUNBOOK_LOGS/images-build.log
HASH_LABEL=org.temporal-runbooks.rootfs-sha256

export DOCKER_BUILDKIT=0 # classic builder: Debian's 20.10 engine, no buildx

preflight() {
  ensure_dirs
  mkdir -p "$CACHE"
  curl -sf --max-time 3 --unix-socket "$DOCKER_SOCK" http://docker/_ping >/dev/null ||
    die "docker engine not answering on $DOCKER_SOCK: run scripts/docker-engine.sh start"
  curl -sf --max-time 3 "http://$REGISTRY/v2/" >/dev/null ||
    die "registry not answering on $REGISTRY: run scripts/registry.sh start"
}

base_image() {
  local script=$IMAGES_DIR/debian/mkrootfs.sh hash tarball
  hash=$(sha256sum "$script" | cut -c1-16)
  if [[ $(docker_cmd image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$BASE" 2>/dev/null || true) == "$hash" ]]; then
    log "images: $BASE up to date (rootfs $hash)"
    return 0
  fi
  tarball=$CACHE/debian-bookworm-minbase-$hash.tar
  if [[ -s $tarball ]]; then
    log "images: rootfs $hash cached ($tarball)"
  else
    command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/install.sh"
    log "images: debootstrap bookworm minbase (about 30-60 s; log: $RUNBOOK_LOGS/mkrootfs.log)"
    local t0=$SECONDS
    if ! TMPDIR=$CACHE bash "$script" "$tarball" >"$RUNBOOK_LOGS/mkrootfs.log" 2>&1; then
      tail -n 30 "$RUNBOOK_LOGS/mkrootfs.log" >&2
      die "building the Debian rootfs failed (log: $RUNBOOK_LOGS/mkrootfs.log)"
    fi
    # drop tarballs of older versions of mkrootfs.sh
    find "$CACHE" -maxdepth 1 -name 'debian-bookworm-minbase-*.tar' ! -name "${tarball##*/}" -delete
    log "images: rootfs built in $((SECONDS - t0))s ($(du -h "$tarball" | cut -f1))"
  fi
  log "images: docker import $BASE"
  docker_cmd import \
    --change "LABEL $HASH_LABEL=$hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    "$tarball" "$BASE" >/dev/null
}

# build TAG DIR [--build-arg K=V ...]
build() {
  local tag=$1 dir=$2; shift 2
  local t0=$SECONDS
  printf '\n===== %s: build %s from %s %s\n' "$(date -Is)" "$tag" "$dir" "$*" >>"$BUILD_LOG"
  if ! docker_cmd build --pull=false "$@" -t "$tag" "$dir" >>"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    die "docker build of $tag failed (log: $BUILD_LOG)"
  fi
  log "images: built $tag ($((SECONDS - t0))s)"
}

# push TAG: unless the registry already serves this image's manifest.
push() {
  local tag=$1 repo name ref remote
  repo=${tag%:*}; ref=${tag##*:}; name=${repo#"$REGISTRY"/}
  remote=$(curl -sfI --max-time 5 \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$name/manifests/$ref" 2>/dev/null |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}' || true)
  if [[ -n $remote ]] &&
    docker_cmd image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" | grep -qx "$repo@$remote"; then
    log "images: $tag already in the registry ($remote)"
    return 0
  fi
  printf '\n===== %s: push %s\n' "$(date -Is)" "$tag" >>"$BUILD_LOG"
  if ! docker_cmd push "$tag" >>"$BUILD_LOG" 2>&1; then
    tail -n 20 "$BUILD_LOG" >&2
    die "docker push $tag failed (log: $BUILD_LOG)"
  fi
  log "images: pushed $tag"
}

main() {
  preflight
  exec 9>"$RUNBOOK_RUN/images.lock"
  flock -w 600 9 || die "another images.sh is running (lock $RUNBOOK_RUN/images.lock)"
  local t0=$SECONDS
  base_image
  docker_cmd tag "$BASE" "$REGISTRY/debian:bookworm"

  local v
  for v in v1 v2 broken bad-migration; do
    build "$REGISTRY/demo-app:$v" "$IMAGES_DIR/demo-app" --build-arg "APP_VERSION=$v"
  done
  build "$REGISTRY/postgres:15" "$IMAGES_DIR/postgres"
  for v in 7.0 7.2 broken; do
    build "$REGISTRY/redis:$v" "$IMAGES_DIR/redis" --build-arg "REDIS_TAG=$v"
  done
  build "$REGISTRY/nginx:1" "$IMAGES_DIR/nginx"

  local tag
  for tag in "$REGISTRY/debian:bookworm" "$REGISTRY/demo-app:v1" "$REGISTRY/demo-app:v2" \
    "$REGISTRY/demo-app:broken" "$REGISTRY/demo-app:bad-migration" "$REGISTRY/postgres:15" "$REGISTRY/nginx:1" \
    "$REGISTRY/redis:7.0" "$REGISTRY/redis:7.2" "$REGISTRY/redis:broken"; do
    push "$tag"
  done
  # dangling layers from rebuilt images
  docker_cmd image prune -f >/dev/null 2>&1 || true
  log "images: all images ready in $REGISTRY ($((SECONDS - t0))s)"
}

main "$@"
