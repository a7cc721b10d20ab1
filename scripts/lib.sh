# Shared by scripts/dev and scripts/test. Installs only what is missing; safe to run again.

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_build_tools() {
  apt_install ca-certificates curl gcc libc6-dev git
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own cargo is too old for this crate; rustup installs the current stable toolchain.
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# What the supervised components need: Xvfb, Chromium, fonts, Node.js >= 20.19 for Vite 8.
ensure_runtime() {
  apt_install xvfb chromium fonts-liberation x11-utils systemd
  if ! command -v node >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  local version
  version=$(node -p 'process.versions.node')
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)'; then
    echo "Node.js >= 20.19 is needed for Vite 8 (found $version)" >&2
    exit 1
  fi
}

# The app skeleton's dependencies, from its committed lockfile.
ensure_app_deps() {
  local app=$1
  if [ ! -f "$app/node_modules/.package-lock.json" ] || ! cmp -s "$app/package-lock.json" "$app/node_modules/.acp-bridge-lock"; then
    (cd "$app" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.acp-bridge-lock)
  fi
}
