#!/usr/bin/env bash
# Baseline for the cold-start figure: the same three programs started one after another by a plain
# script that waits for each to be ready. Prints the milliseconds until all three are ready, then the time each
# step took (Xvfb, Chromium, Vite), on one line, then stops them.
# Usage: serial_start.sh <display> <cdp-port> <vite-port> <app-dir> <profile-dir>
set -euo pipefail
display=$1 cdp=$2 vite=$3 app=$4 profile=$5
now() { date +%s%N; }
# Waits for a URL to answer (curl's own exit code), giving up after 60 s.
wait_url() {
  local deadline=$(( $(date +%s) + 60 ))
  until curl -s -o /dev/null "$1"; do
    (( $(date +%s) < deadline )) || { echo "timed out waiting for $1" >&2; exit 1; }
    sleep 0.01
  done
}
start=$(now)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

fifo=$(mktemp -u); mkfifo "$fifo"
setsid Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp -displayfd 4 4>"$fifo" >/dev/null 2>&1 &
pids+=($!)
read -r _ <"$fifo"; rm -f "$fifo"
xvfb_ready=$(now)

DISPLAY=":$display" setsid /usr/lib/chromium/chromium --no-sandbox --remote-debugging-port="$cdp" --remote-debugging-address=127.0.0.1 \
  --user-data-dir="$profile" --no-first-run --no-default-browser-check --disable-background-networking \
  --disable-component-update --disable-sync --disable-default-apps --disable-gpu --disable-dev-shm-usage \
  --disable-quic --disable-breakpad --password-store=basic --kiosk "http://localhost:$vite" \
  >/dev/null 2>&1 </dev/null &
pids+=($!)
wait_url "http://127.0.0.1:$cdp/json/version"
chromium_ready=$(now)

(cd "$app" && exec setsid node node_modules/vite/bin/vite.js --host 127.0.0.1 --port "$vite" --strictPort >/dev/null 2>&1 </dev/null) &
pids+=($!)
wait_url "http://127.0.0.1:$vite/"

vite_ready=$(now)
ms() { echo $(( ($1 - $2) / 1000000 )); }
echo "$(ms "$vite_ready" "$start") $(ms "$xvfb_ready" "$start") $(ms "$chromium_ready" "$xvfb_ready") $(ms "$vite_ready" "$chromium_ready")"
