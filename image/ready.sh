#!/usr/bin/env bash
# The E2B template's ready command (installed as /opt/acp-bridge/ready.sh). E2B snapshots the VM once it exits 0, so
# it waits for a warm stack:
#   1. GET /health answers 200: the daemon listens and Xvfb, Chromium and Vite are all ready (/health is public: no
#      token is needed, and none exists at build time);
#   2. unless Chromium is disabled, the browser shows the app: its page target (CDP /json/list on 127.0.0.1) is at
#      the Chromium URL and has the app's own title. Chromium starts before Vite answers, so at first it shows an
#      error page (titled with the host name) that it reloads by itself a few seconds later; a snapshot taken then
#      would start every sandbox on that error page. This check needs node (it is in the image).
#
# Usage: ready.sh [--env-file FILE] [--url URL] [--timeout SECONDS] [--no-browser]
#   --env-file FILE   where to read ACP_BRIDGE_LISTEN, _CDP_PORT, _VITE_PORT, _CHROMIUM_URL and _NO_CHROMIUM
#                     (default /etc/acp-bridge/env; the daemon's defaults for what it does not set)
#   --url URL         the daemon's base URL, instead of deriving it from ACP_BRIDGE_LISTEN
#   --timeout SECONDS deadline for the whole wait (default 120; E2B also retries a failed ready command)
#   --no-browser      skip check 2
# Exit status: 0 ready, 1 deadline passed (what was last seen is printed on stderr), 2 bad usage.
set -euo pipefail

env_file=/etc/acp-bridge/env
url=
timeout=120
browser=1

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

while (($#)); do
  case $1 in
    --env-file) env_file=${2:?--env-file needs a value}; shift 2 ;;
    --url) url=${2:?--url needs a value}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    --no-browser) browser=0; shift ;;
    -h | --help) usage ;;
    *) echo "ready.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[[ $timeout =~ ^[0-9]+$ ]] || { echo "ready.sh: --timeout must be whole seconds: $timeout" >&2; exit 2; }

# setting KEY DEFAULT: the value of KEY in the env file (systemd EnvironmentFile syntax: KEY=value, optionally
# quoted; the last assignment wins), or DEFAULT.
setting() {
  local line value
  if [[ -r $env_file ]]; then
    line=$(grep -E "^[[:space:]]*$1=" "$env_file" | tail -n 1 || true)
    if [[ -n $line ]]; then
      value=${line#*=}
      value=${value%\"}; value=${value#\"}
      value=${value%\'}; value=${value#\'}
      echo "$value"
      return
    fi
  fi
  echo "$2"
}

if [[ -z $url ]]; then
  listen=$(setting ACP_BRIDGE_LISTEN 0.0.0.0:8420)
  port=${listen##*:}
  host=${listen%:*}
  # The daemon listens on a wildcard address: ask it on loopback.
  case $host in
    0.0.0.0 | '') host=127.0.0.1 ;;
    '[::]' | '::') host='[::1]' ;;
  esac
  url="http://$host:$port"
fi
url=${url%/}

case $(setting ACP_BRIDGE_NO_CHROMIUM false | tr '[:upper:]' '[:lower:]') in
  1 | y | yes | t | true | on) browser=0 ;;
esac
if ((browser)); then
  cdp_port=$(setting ACP_BRIDGE_CDP_PORT 9222)
  page_url=$(setting ACP_BRIDGE_CHROMIUM_URL "http://localhost:$(setting ACP_BRIDGE_VITE_PORT 5173)")
  command -v node >/dev/null 2>&1 || { echo "ready.sh: node is needed for the browser check (or --no-browser)" >&2; exit 2; }
fi

# Prints what the browser shows; exits 0 when a page is at $2 with a title of its own (not the host name that
# Chromium shows for an error page or a page still loading).
browser_shows_app() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const [cdp, want] = process.argv.slice(1);
    const host = new URL(want).host;
    fetch(`http://127.0.0.1:${cdp}/json/list`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.json())
      .then((targets) => {
        const pages = targets.filter((t) => t.type === "page");
        console.log(JSON.stringify(pages.map((t) => ({ url: t.url, title: t.title }))));
        const ok = pages.some((t) => t.url.startsWith(want) && t.title && !host.startsWith(t.title) && !t.title.startsWith(host));
        process.exit(ok ? 0 : 1);
      })
      .catch((e) => { console.log(`CDP on 127.0.0.1:${cdp}: ${e.cause?.code ?? e.message}`); process.exit(1); });
  ' "$1" "$2"
}

# Microseconds since the epoch (bash 5's $EPOCHREALTIME, whatever the locale's decimal mark).
now_us() { echo $((10#${EPOCHREALTIME//[!0-9]/})); }
deadline=$(($(now_us) + timeout * 1000000))
body=$(mktemp)
trap 'rm -f "$body"' EXIT
code=000
seen=
while :; do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 2 "$url/health" 2>/dev/null) || code=000
  if [[ $code == 200 ]]; then
    if ((!browser)); then
      echo "acp-bridge is ready: GET $url/health answered 200"
      exit 0
    fi
    if seen=$(browser_shows_app "$cdp_port" "$page_url"); then
      echo "acp-bridge is ready: GET $url/health answered 200 and the browser shows the app: $seen"
      exit 0
    fi
  fi
  if (($(now_us) >= deadline)); then
    break
  fi
  sleep 0.25
done

echo "acp-bridge is not ready after ${timeout}s: GET $url/health answered $code" >&2
if [[ -s $body ]]; then
  cat "$body" >&2
  echo >&2
fi
if [[ $code == 000 ]]; then
  echo "(nothing answers on $url; see: journalctl -u acp-bridge -n 50)" >&2
elif [[ $code == 200 ]]; then
  echo "the browser does not show $page_url yet: $seen" >&2
fi
exit 1
