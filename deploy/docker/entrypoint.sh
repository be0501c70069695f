#!/bin/sh
# The container's entrypoint (docs/deploy.md, "Docker"): one word says what the container does.
#
#   serve           gunicorn (modelport serve) on MODELPORT_BIND, MODELPORT_WORKERS workers
#                   (default: twice the CPUs the container may use, at most 4); the default
#   migrate         bring the database schema to the newest migration (modelport db upgrade)
#   create-admin    create an administrator: --email, --name, and the password typed at the
#                   terminal (docker run -it) or piped in with --password-stdin
#   purge           erase stored prediction inputs and outputs past MODELPORT_RETENTION_DAYS
#   rollup          add new prediction records into the monitoring rollups (modelport rollup)
#   healthcheck     exit 0 if this container's server answers /healthz with 200 (HEALTHCHECK)
#   anything else   passed to the modelport command line as it is (e.g. `demo --if-empty`)
#
# Every command finds `modelport` and `python` on PATH, and each replaces this shell (exec),
# so signals such as docker stop's SIGTERM reach gunicorn's master directly.
set -eu

# CPUs this container may use: its cgroup v2 quota (docker run --cpus, compose's cpus,
# Kubernetes' CPU limit) rounded up, else the CPUs it may run on. Python's cpu_count() sees
# every CPU of the host, and gunicorn would start that many workers in a 1-CPU container.
cpus() {
    if [ -r /sys/fs/cgroup/cpu.max ]; then
        read -r quota period < /sys/fs/cgroup/cpu.max
        if [ "$quota" != max ]; then
            echo $(( (quota + period - 1) / period ))
            return
        fi
    fi
    nproc
}

command=serve
if [ "$#" -gt 0 ]; then
    command=$1
    shift
fi

case "$command" in
    serve)
        if [ -z "${MODELPORT_WORKERS:-}" ]; then
            workers=$(( $(cpus) * 2 ))
            [ "$workers" -le 4 ] || workers=4  # the cap of modelport/ops/gunicorn_conf.py
            MODELPORT_WORKERS=$workers
            export MODELPORT_WORKERS
        fi
        exec modelport serve "$@"
        ;;
    migrate)
        exec modelport db upgrade "$@"
        ;;
    create-admin | purge | rollup)
        exec modelport "$command" "$@"
        ;;
    healthcheck)
        exec python - "$@" <<'PYTHON'
import os
import sys
import urllib.request

port = os.environ.get("MODELPORT_BIND", "127.0.0.1:5000").rpartition(":")[2]
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except OSError as error:
    print(f"/healthz: {error}", file=sys.stderr)
    sys.exit(1)
PYTHON
        ;;
    *)
        exec modelport "$command" "$@"
        ;;
esac
