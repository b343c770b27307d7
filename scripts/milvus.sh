#!/usr/bin/env bash
# Local Milvus for development and CI, from the PyPI package `milvus` (standalone 2.3.5).
#   scripts/milvus.sh start   start it unless something already answers on the port
#   scripts/milvus.sh stop    stop the server this script started (its pid file), nothing else
#   scripts/milvus.sh status
# Data under .data/milvus, log in .data/milvus.log, pid in .data/milvus.pid. Overrides (for a
# second server beside the usual one, as tests/faults/test_milvus_script.py starts):
# MILVUS_DATA_DIR, MILVUS_PORT (the proxy port, passed on), MILVUS_HEALTH_PORT (where
# /healthz is looked for: milvus-server takes the first free port from 9091),
# MILVUS_PID_FILE, MILVUS_LOG_FILE, MILVUS_SERVER_ARGS (more milvus-server options, e.g. the
# other ports), and ETCD_CONFIG_PATH (read by the embedded etcd for its own ports).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${MILVUS_DATA_DIR:-.data/milvus}"
PORT="${MILVUS_PORT:-19530}"
PID_FILE="${MILVUS_PID_FILE:-.data/milvus.pid}"
LOG_FILE="${MILVUS_LOG_FILE:-.data/milvus.log}"
SERVER="${MILVUS_SERVER_BIN:-.venv/bin/milvus-server}"
read -r -a SERVER_ARGS <<<"${MILVUS_SERVER_ARGS:-}"

HEALTH_PORT="${MILVUS_HEALTH_PORT:-9091}"

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
# The gRPC port opens before the coordinators are up; /healthz says OK once every component is
# (a collection load right after the port opens otherwise times out).
healthy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT" \
    && printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
    && timeout 5 cat <&3 | grep -q '^OK') 2>/dev/null
}

case "${1:-status}" in
  start)
    if answering; then
      for _ in $(seq 1 120); do healthy && break; sleep 1; done
      echo "milvus: already answering on 127.0.0.1:$PORT"; exit 0
    fi
    mkdir -p "$DATA_DIR"
    # Rows not yet sealed into an indexed segment are searched through Milvus's interim
    # IVF index, whose nprobe (16 of 128 lists by default) only the server sets: on LoCoMo
    # that kept 97.2 % of the exact top 10; 64 keeps 99.8 % at the same latency
    # (docs/deployment.md, "Recall"). Milvus reads config overrides from the environment.
    export QUERYNODE_SEGCORE_INTERIMINDEX_NPROBE="${QUERYNODE_SEGCORE_INTERIMINDEX_NPROBE:-64}"
    mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
    # A session of its own: milvus-server forks `milvus run standalone`, and `stop` ends the
    # whole process group by the recorded pid (a background job of a script is no group
    # leader, so setsid runs the server in this very process: its pid is the group's id).
    setsid nohup "$SERVER" --data "$DATA_DIR" --proxy-port "$PORT" "${SERVER_ARGS[@]}" \
      >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 120); do
      if answering && healthy; then
        echo "milvus: started on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"; exit 0
      fi
      if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        echo "milvus: server exited; see $LOG_FILE" >&2; tail -20 "$LOG_FILE" >&2; exit 1
      fi
      sleep 1
    done
    echo "milvus: not answering on 127.0.0.1:$PORT after 120 s; see $LOG_FILE" >&2
    exit 1
    ;;
  stop)
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      echo "milvus: not started by this script"; exit 0
    fi
    # A pid file left by a server that died long ago may name a reused pid: signal it only
    # if it is still the server this script ran.
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "milvus-server"; then
      rm -f "$PID_FILE"
      echo "milvus: pid $pid in $PID_FILE is no milvus-server any more; nothing stopped"; exit 0
    fi
    if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
      # Its own process group (see start): the group is the server and every child of it.
      kill -TERM -- "-$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    else
      # Started by an older version of this script, in the caller's group: the pid and the
      # processes it forked, found from it now (they are reparented once it is gone).
      children="$(pgrep -P "$pid" || true)"
      # shellcheck disable=SC2086 # one pid a word
      kill -TERM "$pid" $children 2>/dev/null || true
      for _ in $(seq 1 30); do
        alive=""
        for p in $pid $children; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
        [ -z "$alive" ] && break; sleep 1
      done
      # shellcheck disable=SC2086
      [ -z "$alive" ] || kill -KILL $alive 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    echo "milvus: stopped (pid $pid)"
    ;;
  status)
    if answering; then echo "milvus: answering on 127.0.0.1:$PORT"; else echo "milvus: down"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
