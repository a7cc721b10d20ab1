#!/usr/bin/env bash
# Builds the E2B sandbox template of acp-bridge, in two steps:
#   1. `docker build` of image/e2b.Dockerfile (multi-stage: release binary, Node.js, the sandbox image) from a clean
#      `git archive` of HEAD, for linux/amd64, then `docker push` of the image;
#   2. `e2b template create <name>` from a one-line Dockerfile `FROM <image>`, with the start and ready commands.
# E2B's CLI builds Dockerfiles itself and refuses multi-stage ones (and the old e2b.toml-based `e2b template build`
# is gone), hence the image built and pushed first.
#
# Usage: image/build-template.sh --image <registry>/<repo>:<tag> [--name acp-bridge] [--cpu-count 2]
#                                [--memory-mb 4096] [--no-push] [--no-docker] [--no-e2b]
#   --image      where the image is pushed; E2B must be able to pull it (a public repository, or see the README
#                for a private registry through the E2B SDK's Template().fromImage(image, credentials))
#   --name       the E2B template name (default acp-bridge)
#   --cpu-count, --memory-mb   the sandbox size (default 2 CPUs, 4096 MB: Chromium, Vite, the Claude CLI and
#                Playwright MCP do not fit E2B's 512 MB default)
#   --no-push    build only; --no-docker: skip step 1 (the image is already pushed); --no-e2b: skip step 2
# Needs: git, docker (with buildx/BuildKit), and for step 2 the E2B CLI (`npm i -g @e2b/cli`) logged in
# (`e2b auth login`, or E2B_API_KEY / E2B_ACCESS_TOKEN in the environment).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The template's commands, run inside the build VM as the template's default user `user` (E2B gives it
# passwordless sudo). The unit is enabled, so systemd has already started it at boot: the start command is a
# no-op then, and starts it otherwise. E2B then retries the ready command every 2 s until it exits 0 and
# snapshots the VM with Xvfb, Chromium, Vite and the daemon running.
START_CMD='sudo systemctl start acp-bridge.service'
READY_CMD='/opt/acp-bridge/ready.sh --timeout 120'

image=
name=acp-bridge
cpu_count=2
memory_mb=4096
push=1
docker_step=1
e2b_step=1

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

while (($#)); do
  case $1 in
    --image) image=${2:?--image needs a value}; shift 2 ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --cpu-count) cpu_count=${2:?--cpu-count needs a value}; shift 2 ;;
    --memory-mb) memory_mb=${2:?--memory-mb needs a value}; shift 2 ;;
    --no-push) push=0; shift ;;
    --no-docker) docker_step=0; shift ;;
    --no-e2b) e2b_step=0; shift ;;
    -h | --help) usage ;;
    *) echo "build-template.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n $image ]] || { echo "build-template.sh: --image is required" >&2; usage; }

if ((docker_step)); then
  if [[ -n $(git status --porcelain) ]]; then
    echo "build-template.sh: warning: uncommitted changes are not in the image (it is built from HEAD)" >&2
  fi
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  git archive --format=tar HEAD | tar -C "$context" -xf -
  echo "== docker build $image (HEAD $(git rev-parse --short HEAD))"
  docker build --platform linux/amd64 -f "$context/image/e2b.Dockerfile" -t "$image" \
    --label "org.opencontainers.image.revision=$(git rev-parse HEAD)" "$context"
  if ((push)); then
    docker push "$image"
  fi
fi

if ((e2b_step)); then
  from=$(mktemp -d)
  trap 'rm -rf "${context:-}" "$from"' EXIT
  printf 'FROM %s\n' "$image" >"$from/e2b.Dockerfile"
  echo "== e2b template create $name from $image"
  e2b template create "$name" --path "$from" --dockerfile e2b.Dockerfile \
    --cmd "$START_CMD" --ready-cmd "$READY_CMD" \
    --cpu-count "$cpu_count" --memory-mb "$memory_mb"
fi
