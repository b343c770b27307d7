#!/usr/bin/env bash
# Local Milvus for development and CI, from the PyPI package `milvus` (standalone 2.3.5).
#   scripts/milvus.sh start   start it unless something already answers on the port
#   scripts/milvus.sh stop    stop the server this script started (pid file)
#   scripts/milvus.sh status
# Data under .data/milvus, log in .data/milvus.log, pid in .data/milvus.pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${MILVUS_DATA_DIR:-.data/milvus}"
PORT="${MILVUS_PORT:-19530}"
PID_FILE=".data/milvus.pid"
LOG_FILE=".data/milvus.log"
SERVER="${MILVUS_SERVER_BIN:-.venv/bin/milvus-server}"

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
    nohup "$SERVER" --data "$DATA_DIR" >>"$LOG_FILE" 2>&1 &
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
    if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      pid="$(cat "$PID_FILE")"
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      pkill -KILL -f "milvus run standalone" 2>/dev/null || true
      rm -f "$PID_FILE"
      echo "milvus: stopped"
    else
      echo "milvus: not started by this script"
    fi
    ;;
  status)
    if answering; then echo "milvus: answering on 127.0.0.1:$PORT"; else echo "milvus: down"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
