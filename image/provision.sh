#!/usr/bin/env bash
# Provisions the acp-bridge sandbox image: the one script image/e2b.Dockerfile runs, also usable on a Debian machine
# (as root) and, with --root and --layout-only, into a temporary directory (tests/it/image.rs does that).
#
# Usage: image/provision.sh [--root DIR] [--steps LIST | --layout-only] [--binary PATH] [--owner UID:GID]
#   --root DIR       the target root directory (default /). Steps other than `layout` and `npm` need /.
#   --steps LIST     comma-separated steps to run, in this order (default: all):
#                      packages  apt-get install xvfb chromium fonts-liberation git ca-certificates curl x11-utils
#                                [internet: Debian mirrors; root]
#                      node      make sure Node.js >= 20.19 is there; if not, install Node.js 22 from NodeSource
#                                [internet: deb.nodesource.com, which this project's machines cannot reach; the
#                                Dockerfile copies Node from the official node image instead, so this only checks]
#                      user      create the sandbox user `user` (HOME /home/user) if missing [root; /etc/passwd]
#                      layout    lay the files out under --root [local files only; chown needs root]
#                      npm       `npm ci` in /opt/acp-bridge/tools and, if it has no node_modules yet, in /app
#                                [internet: the npm registry]
#                      enable    `systemctl daemon-reload` if systemd runs (the unit is enabled by `layout`)
#                                [root; the running system]
#   --layout-only    the same as --steps layout: nothing that needs the internet or changes the running system.
#   --binary PATH    the acp-bridge binary to install (default: <repo>/target/release/acp-bridge).
#   --owner UID:GID  owner of /home/user and /app (default: the ids of `user`; needed when `user` does not exist,
#                    e.g. in a temporary root).
#
# What `layout` makes (paths under --root; the unit, the env file and the Dockerfile rely on them):
#   /usr/local/bin/acp-bridge                                   0755 root   the daemon
#   /etc/systemd/system/acp-bridge.service                      0644 root   the unit (systemd/acp-bridge.service)
#   /etc/systemd/system/multi-user.target.wants/acp-bridge.service  ->  the unit: enabled
#   /etc/acp-bridge/env                                         0644 root   from systemd/env.example, if not there yet
#   /etc/acp-bridge/env.example                                 0644 root   the same, always refreshed
#   /etc/acp-bridge/system-prompt.md                            0644 root   image/system-prompt.md
#   /opt/acp-bridge/ready.sh                                    0755 root   the E2B ready command (image/ready.sh)
#   /opt/acp-bridge/tools/{package.json,package-lock.json}      0644 root   pinned agent tools (image/tools)
#   /home/user                                                  0750 owner
#   /home/user/.claude                                          0700 owner  Claude config dir (credentials)
#   /home/user/.claude.json                                     0600 owner  `{}` if missing (the adapter needs it)
#   /home/user/.cache/acp-bridge                                0700 owner  Chromium's profile goes below
#   /app                                                        0755 owner  image/app without node_modules, only if
#                                                                           /app/package.json is missing (it is the
#                                                                           user's app once it exists)
# /run/acp-bridge (the token's directory) is not made here: /run is a tmpfs; the unit's RuntimeDirectory makes it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")

all_steps=(packages node user layout npm enable)
root=/
steps=$(IFS=,; echo "${all_steps[*]}")
binary=$src/target/release/acp-bridge
owner=
user_name=user
user_home=/home/user
apt_packages=(xvfb chromium fonts-liberation git ca-certificates curl x11-utils)

die() {
  echo "provision.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

while (($#)); do
  case $1 in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --steps) steps=${2:?--steps needs a list}; shift 2 ;;
    --layout-only) steps=layout; shift ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --owner) owner=${2:?--owner needs UID:GID}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "provision.sh: unknown argument: $1" >&2; usage ;;
  esac
done

[[ $root == /* ]] || die "--root must be an absolute path: $root"
root=${root%/}
IFS=, read -r -a wanted <<<"$steps"
for step in "${wanted[@]}"; do
  [[ " ${all_steps[*]} " == *" $step "* ]] || die "unknown step '$step' (steps: ${all_steps[*]})"
done

wants() {
  local step
  for step in "${wanted[@]}"; do
    [[ $step == "$1" ]] && return 0
  done
  return 1
}

is_root() { [[ $(id -u) == 0 ]]; }

needs_live_root() {
  [[ -z $root ]] || die "step '$1' changes the running system and works only with --root /"
  is_root || die "step '$1' needs root"
}

node_is_recent() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)'
}

# --- packages [internet: Debian mirrors; root] ------------------------------------------------------------------
step_packages() {
  needs_live_root packages
  echo "provision: apt-get install ${apt_packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
}

# --- node [internet: NodeSource; root] ----------------------------------------------------------------------------
step_node() {
  if node_is_recent; then
    echo "provision: Node.js $(node --version) is recent enough"
    return
  fi
  needs_live_root node
  # This part needs deb.nodesource.com. In the image, Node.js comes from the official node image (see
  # e2b.Dockerfile) and this branch never runs.
  echo "provision: installing Node.js 22 from NodeSource (Vite 8 needs Node.js >= 20.19)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key -o /etc/apt/keyrings/nodesource.asc
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.asc] https://deb.nodesource.com/node_22.x nodistro main" \
    >/etc/apt/sources.list.d/nodesource.list
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs
  node_is_recent || die "Node.js >= 20.19 is needed (found $(node --version 2>/dev/null || echo none))"
}

# --- user [root; /etc/passwd] -----------------------------------------------------------------------------------
step_user() {
  needs_live_root user
  if id -u "$user_name" >/dev/null 2>&1; then
    echo "provision: user '$user_name' exists"
  else
    echo "provision: creating user '$user_name' (HOME $user_home)"
    useradd --create-home --home-dir "$user_home" --shell /bin/bash --user-group "$user_name"
  fi
}

# --- layout [local files] -----------------------------------------------------------------------------------------
resolve_owner() {
  if [[ -n $owner ]]; then
    [[ $owner =~ ^[0-9]+:[0-9]+$ ]] || die "--owner must be numeric UID:GID: $owner"
    return
  fi
  id -u "$user_name" >/dev/null 2>&1 ||
    die "user '$user_name' does not exist: run the 'user' step first, or pass --owner UID:GID"
  owner="$(id -u "$user_name"):$(id -g "$user_name")"
}

# own OWNER PATH...: chown when we can (root); otherwise the files stay ours.
own() {
  local who=$1
  shift
  if is_root; then
    chown -h "$who" "$@"
  fi
}

# parent PATH: make PATH's parent directory (0755) if it is missing; existing ones are left alone.
parent() {
  local up
  up=$(dirname "$1")
  [[ -d $up ]] || install -d -m 0755 "$up"
}

# put MODE OWNER SOURCE DEST: copy one file with its mode and owner, creating the parent directories.
put() {
  local mode=$1 who=$2 from=$3 to=$4
  [[ -f $from ]] || die "missing source file: $from"
  parent "$to"
  install -m "$mode" "$from" "$to"
  own "$who" "$to"
}

# dir MODE OWNER PATH: a directory with exactly this mode and owner (parents are created 0755).
dir() {
  local mode=$1 who=$2 path=$3
  parent "$path"
  install -d -m "$mode" "$path"
  chmod "$mode" "$path"
  own "$who" "$path"
}

step_layout() {
  resolve_owner
  is_root || echo "provision: not root: files stay owned by $(id -un), not $owner" >&2
  [[ -x $binary ]] || die "no acp-bridge binary at $binary (cargo build --release --locked, or pass --binary)"
  local r=$root
  echo "provision: laying out the image under ${root:-/} (owner of /home/user and /app: $owner)"

  # The daemon and its unit, enabled for multi-user.target (what `systemctl enable` does for WantedBy=).
  put 0755 0:0 "$binary" "$r/usr/local/bin/acp-bridge"
  put 0644 0:0 "$src/systemd/acp-bridge.service" "$r/etc/systemd/system/acp-bridge.service"
  dir 0755 0:0 "$r/etc/systemd/system/multi-user.target.wants"
  ln -sfn /etc/systemd/system/acp-bridge.service "$r/etc/systemd/system/multi-user.target.wants/acp-bridge.service"

  # Configuration: the env file is configuration (kept if present), the example and the prompt are image content.
  dir 0755 0:0 "$r/etc/acp-bridge"
  put 0644 0:0 "$src/systemd/env.example" "$r/etc/acp-bridge/env.example"
  if [[ ! -e $r/etc/acp-bridge/env ]]; then
    put 0644 0:0 "$src/systemd/env.example" "$r/etc/acp-bridge/env"
  fi
  put 0644 0:0 "$here/system-prompt.md" "$r/etc/acp-bridge/system-prompt.md"

  # The ready command and the pinned agent tools (their node_modules come with the npm step).
  dir 0755 0:0 "$r/opt/acp-bridge"
  put 0755 0:0 "$here/ready.sh" "$r/opt/acp-bridge/ready.sh"
  dir 0755 0:0 "$r/opt/acp-bridge/tools"
  put 0644 0:0 "$here/tools/package.json" "$r/opt/acp-bridge/tools/package.json"
  put 0644 0:0 "$here/tools/package-lock.json" "$r/opt/acp-bridge/tools/package-lock.json"

  # The sandbox user's home: the Claude config dir the daemon watches, ~/.claude.json (without it the adapter can
  # refuse sessions), and the cache directory of Chromium's profile.
  dir 0750 "$owner" "$r$user_home"
  dir 0700 "$owner" "$r$user_home/.claude"
  if [[ ! -e $r$user_home/.claude.json ]]; then
    (umask 077 && echo '{}' >"$r$user_home/.claude.json")
  fi
  chmod 0600 "$r$user_home/.claude.json"
  own "$owner" "$r$user_home/.claude.json"
  dir 0700 "$owner" "$r$user_home/.cache"
  dir 0700 "$owner" "$r$user_home/.cache/acp-bridge"

  # The app: the skeleton, unless an app is already there.
  if [[ -f $r/app/package.json ]]; then
    echo "provision: $r/app already holds an app; left as it is"
  else
    dir 0755 "$owner" "$r/app"
    tar -C "$here/app" --exclude=./node_modules --exclude=./dist -cf - . | tar -C "$r/app" --no-same-owner -xf -
    if is_root; then
      chown -R "$owner" "$r/app"
    fi
  fi
}

# --- npm [internet: the npm registry] -----------------------------------------------------------------------------
step_npm() {
  command -v npm >/dev/null 2>&1 || die "npm is missing (run the node step)"
  local r=$root
  [[ -f $r/opt/acp-bridge/tools/package-lock.json ]] || die "no $r/opt/acp-bridge/tools: run the layout step first"
  echo "provision: npm ci in /opt/acp-bridge/tools"
  (cd "$r/opt/acp-bridge/tools" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  if [[ -d $r/app/node_modules ]]; then
    echo "provision: /app/node_modules exists; left as it is"
  else
    echo "provision: npm ci in /app"
    # Vite, TypeScript and the plugins are devDependencies: include them whatever NODE_ENV says.
    (cd "$r/app" && npm ci --include=dev --no-audit --no-fund --loglevel=error)
    resolve_owner
    if is_root; then
      chown -R "$owner" "$r/app"
    fi
  fi
}

# --- enable [root; the running system] ----------------------------------------------------------------------------
step_enable() {
  if [[ -z $root && -d /run/systemd/system ]] && is_root; then
    echo "provision: systemctl daemon-reload (start it with: systemctl start acp-bridge)"
    systemctl daemon-reload
  else
    echo "provision: systemd is not running here; acp-bridge.service is enabled and starts at the next boot"
  fi
}

for step in "${all_steps[@]}"; do
  if wants "$step"; then
    "step_$step"
  fi
done
echo "provision: done (${steps})"
