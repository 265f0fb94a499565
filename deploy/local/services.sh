#!/usr/bin/env bash
# Starts, stops and inspects the five services on this machine (after stack.sh has started
# Kafka and PostgreSQL), and the local SMTP server that keeps the e-mail they send
# (deploy/local/mailbox.py, messages under .local/mail, `make mail`). Logs and pid files live
# under .local/ like the stack's.
#   deploy/local/services.sh start|stop|status|urls [service...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${CC_LOCAL_DIR:-$ROOT/.local}"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
PY="${CC_PYTHON:-$ROOT/.venv/bin/python}"
WORKERS="${CC_WORKERS:-1}"
# A development machine: the services accept the development token key and survey secret
# (deploy/local/dev-token-key.DEV-ONLY.*), which they refuse anywhere CC_DEVELOPMENT is not 1.
export CC_DEVELOPMENT="${CC_DEVELOPMENT:-1}"
ALL=(mailbox intake router sla feedback console)

port_of() {
  case "$1" in
    intake) echo "${INTAKE_PORT:-8001}" ;;
    router) echo "${ROUTER_PORT:-8002}" ;;
    sla) echo "${SLA_PORT:-8003}" ;;
    feedback) echo "${FEEDBACK_PORT:-8004}" ;;
    console) echo "${CONSOLE_PORT:-8005}" ;;
    mailbox) echo "${CC_MAIL_PORT:-2525}" ;;
    *) echo "unknown service: $1" >&2; exit 2 ;;
  esac
}

is_running() {
  local pidfile="$RUN/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

healthy() {
  "$PY" - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# The mailbox is ready when it greets like an SMTP server.
smtp_healthy() {
  "$PY" - "$1" <<'PY'
import smtplib, sys
try:
    with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=2) as smtp:
        sys.exit(0 if smtp.noop()[0] == 250 else 1)
except Exception:
    sys.exit(1)
PY
}

# Something (an old run's server, another program) already listens on the port: the new
# service could not bind it, and the readiness check would be answered by the other one.
port_taken() {
  "$PY" - "$1" <<'PY'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

ready() {
  if [[ "$1" == mailbox ]]; then smtp_healthy "$(port_of "$1")"; else healthy "$(port_of "$1")"; fi
}

address_of() {
  if [[ "$1" == mailbox ]]; then
    echo "smtp://127.0.0.1:$(port_of "$1")  (messages kept in $LOCAL/mail: make mail)"
  elif [[ "$1" == console ]]; then
    echo "http://127.0.0.1:$(port_of "$1")  (open it in a browser; make demo prints users to sign in as)"
  else
    echo "http://127.0.0.1:$(port_of "$1")  (API docs: http://127.0.0.1:$(port_of "$1")/docs)"
  fi
}

# Before anything starts: a port another process holds stops the whole start, so no service
# is left running half-started.
check_ports() {
  local svc port
  for svc in "$@"; do
    is_running "$svc" && continue
    port="$(port_of "$svc")"
    if port_taken "$port"; then
      echo "$svc: port $port is already in use by another process (not this script's $svc):" \
        "stop it, or give $svc another port (see port_of in $0)" >&2
      exit 1
    fi
  done
}

start_one() {
  local svc="$1" port
  port="$(port_of "$svc")"
  if is_running "$svc"; then
    echo "$svc already running (pid $(cat "$RUN/$svc.pid"))"
    return
  fi
  mkdir -p "$RUN" "$LOGS"
  if [[ "$svc" == mailbox ]]; then
    setsid "$PY" "$ROOT/deploy/local/mailbox.py" --dir "$LOCAL/mail" serve --port "$port" \
      >>"$LOGS/mailbox.log" 2>&1 < /dev/null &
    echo $! >"$RUN/mailbox.pid"
    return
  fi
  # setsid: the service survives the shell that started it; the pid is uvicorn's own.
  setsid "$PY" -m uvicorn --factory "$svc.app:create_app" --host 127.0.0.1 --port "$port" \
    --workers "$WORKERS" --no-access-log --timeout-graceful-shutdown 15 \
    >>"$LOGS/$svc.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$svc.pid"
}

wait_ready() {
  local svc="$1" port deadline
  port="$(port_of "$svc")"
  deadline=$((SECONDS + ${CC_START_TIMEOUT:-90}))
  until ready "$svc"; do
    if ! is_running "$svc"; then
      echo "$svc exited during start-up; last log lines:" >&2
      tail -n 40 "$LOGS/$svc.log" >&2 || true
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "$svc not ready after ${CC_START_TIMEOUT:-90}s; last log lines:" >&2
      tail -n 40 "$LOGS/$svc.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

stop_one() {
  local svc="$1" pid
  if ! is_running "$svc"; then
    rm -f "$RUN/$svc.pid"
    return
  fi
  pid="$(cat "$RUN/$svc.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$svc did not stop in 30s; killing it" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$svc.pid"
  echo "$svc stopped"
}

cmd="${1:-status}"
shift || true
services=("$@")
((${#services[@]})) || services=("${ALL[@]}")

case "$cmd" in
  start)
    check_ports "${services[@]}"
    for s in "${services[@]}"; do start_one "$s"; done
    for s in "${services[@]}"; do wait_ready "$s"; done
    for s in "${services[@]}"; do
      echo "$s ready: $(address_of "$s")"
    done
    ;;
  stop)
    for s in "${services[@]}"; do stop_one "$s"; done
    ;;
  kill9)
    for s in "${services[@]}"; do
      if is_running "$s"; then kill -KILL -- "-$(cat "$RUN/$s.pid")" 2>/dev/null || kill -KILL "$(cat "$RUN/$s.pid")"; fi
      rm -f "$RUN/$s.pid"
    done
    ;;
  status)
    for s in "${services[@]}"; do
      if is_running "$s"; then
        if ready "$s"; then st=ready; else st="running, not ready"; fi
      else
        st=stopped
      fi
      printf '%-9s %-20s %s\n' "$s" "$st" "$(address_of "$s")"
    done
    ;;
  urls)
    for s in "${services[@]}"; do echo "$s $(address_of "$s")"; done
    ;;
  *)
    echo "usage: $0 start|stop|kill9|status|urls [service...]" >&2
    exit 2
    ;;
esac
