# syntax=docker/dockerfile:1.7
#
# The E2B sandbox template image of acp-bridge: Debian bookworm with the release binary, Xvfb, Chromium, fonts, git,
# Node.js >= 20.19, the pinned agent tools in /opt/acp-bridge/tools, the app skeleton in /app with its dependencies,
# and acp-bridge.service enabled. Everything but the two build stages is done by image/provision.sh.
#
# Build it with image/build-template.sh, which builds this file from a clean `git archive` of HEAD, pushes the image
# and makes the E2B template from it (E2B's CLI builds Dockerfiles itself and refuses multi-stage ones). By hand,
# from a clean checkout (the context must not hold target/ or node_modules: there is no .dockerignore):
#   docker build --platform linux/amd64 -f image/e2b.Dockerfile -t <registry>/acp-bridge-sandbox:<tag> .
#
# Needs the internet: Docker Hub images, Debian mirrors, crates.io and the npm registry. This project's development
# machines have no Docker engine; tests/it/image.rs tests the pieces (unit, provisioning layout, ready command).

ARG RUST_IMAGE=rust:1.95-bookworm
# Vite 8 needs Node.js >= 20.19; 22 is the current LTS line. Pin a digest (node:22-bookworm-slim@sha256:...) for
# reproducible images.
ARG NODE_IMAGE=node:22-bookworm-slim
ARG BASE_IMAGE=debian:bookworm-slim

# --- 1. The release binary ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Only what `cargo build` reads: the manifest declares the benches, so they must be there too.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin acp-bridge \
    && install -D -m 0755 target/release/acp-bridge /out/acp-bridge

# --- 2. Node.js from the official image (the same Debian bookworm userland) ----------------------------------------
FROM ${NODE_IMAGE} AS node

# --- 3. The sandbox image ------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version

# System packages (internet: Debian mirrors), the Node.js check and the sandbox user `user` (HOME /home/user).
# A layer of its own, so that changes to the app or the binary do not redo apt.
RUN --mount=type=bind,source=image/provision.sh,target=/tmp/provision.sh \
    bash /tmp/provision.sh --steps packages,node,user \
    && rm -rf /var/lib/apt/lists/*

# The layout (binary, unit enabled, /etc/acp-bridge, /opt/acp-bridge, ~/.claude, /app) and the npm dependencies
# (internet: the npm registry). The sources are bind-mounted, so no copy of the build context stays in a layer.
RUN --mount=type=bind,source=image,target=/tmp/acp-bridge/image \
    --mount=type=bind,source=systemd,target=/tmp/acp-bridge/systemd \
    --mount=type=bind,from=build,source=/out/acp-bridge,target=/tmp/acp-bridge/bin/acp-bridge \
    bash /tmp/acp-bridge/image/provision.sh --steps layout,npm,enable --binary /tmp/acp-bridge/bin/acp-bridge \
    && rm -rf /root/.npm \
    && /usr/local/bin/acp-bridge --version

# No CMD: E2B boots systemd, which starts the enabled acp-bridge.service; the template's start command
# (`sudo systemctl start acp-bridge.service`, a no-op when it already runs) and ready command
# (/opt/acp-bridge/ready.sh) are set by image/build-template.sh.
