#!/usr/bin/env bash
# Container smoke test: the image and the compose file, really built and run.
#
#   bash scripts/docker_smoke.sh
#
# 1. Starts a Docker engine if none answers (../shared/tools/docker-engine, where present).
# 2. Builds the image (host networking; layers cached across runs).
# 3. `docker run`: waits for /readyz and for Docker's HEALTHCHECK to say healthy,
#    POSTs MNIST test digits to /classify (upright and turned a quarter turn) and
#    checks both models' answers, loads the demo page, checks that no process in
#    the container runs as root, stops it (gracefully) and removes it.
# 4. The same through docker-compose with docker-compose.host.yml, then `down`.
#
# This machine allows host networking only: every container here uses the host's
# network (nothing is published through a bridge) and listens on 127.0.0.1 at a
# free port. Leaves no container and no network behind, also on failure.
#
# Environment: IMAGE (tag, default equivariant-digits:smoke), SMOKE_COMPOSE=0 to
# skip compose, SMOKE_REPORT (JSON report, default artifacts/docker_smoke.json),
# TORCH_INDEX_URL (unset: PyTorch's CPU index when reachable, else the default index).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-equivariant-digits:smoke}
SMOKE_COMPOSE=${SMOKE_COMPOSE:-1}
REPORT=${SMOKE_REPORT:-artifacts/docker_smoke.json}
ENGINE=${DOCKER_ENGINE:-../shared/tools/docker-engine}
PYTHON=${PYTHON:-python3}
READY_TIMEOUT=${READY_TIMEOUT:-180}
SAMPLE=app/static/sample-7.png # an MNIST test 7; both models get it right upright
LABEL=equivariant-digits.smoke=1

log() { printf '[docker_smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { "$PYTHON" -c "import sys; sys.stdout.write(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

free_port() {
  "$PYTHON" -c "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); sys.stdout.write(str(s.getsockname()[1])); s.close()"
}

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi

CONTAINER=""
PROJECT=""
cleanup() {
  if [ -n "$CONTAINER" ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
  if [ -n "$PROJECT" ]; then
    "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml -f docker-compose.host.yml down --remove-orphans --timeout 10 \
      >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# -- engine -------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  [ -x "$ENGINE" ] || die "no Docker engine answers and $ENGINE is missing"
  log "starting the Docker engine with $ENGINE"
  "$ENGINE" >&2 || die "$ENGINE could not start an engine"
fi

if [ -z "${TORCH_INDEX_URL+set}" ]; then
  if "$PYTHON" -c "import urllib.request; urllib.request.urlopen('https://download.pytorch.org/whl/cpu/torch/', timeout=5)" \
    >/dev/null 2>&1; then
    TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
  else
    TORCH_INDEX_URL=""
    log "download.pytorch.org is not reachable: torch comes from the default index (TORCH_INDEX_URL=)"
  fi
fi
export TORCH_INDEX_URL

# -- checks shared by `docker run` and compose ---------------------------------
# wait_ready CONTAINER PORT START: prints "ready_s healthy_s" (seconds from START).
wait_ready() {
  local container=$1 port=$2 start=$3 ready="" healthy="" deadline state
  deadline=$(($(date +%s) + READY_TIMEOUT))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container")
    case $state in
      running*) ;;
      *) docker logs "$container" >&2 || true; die "container $container is not running: $state" ;;
    esac
    if [ -z "$ready" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then ready=$(since "$start"); fi
    if [ -z "$healthy" ] && [ "$state" = "running healthy" ]; then healthy=$(since "$start"); fi
    if [ -n "$ready" ] && [ -n "$healthy" ]; then
      echo "$ready $healthy"
      return 0
    fi
    sleep 0.2
  done
  docker logs "$container" >&2 || true
  die "$container not ready and healthy within ${READY_TIMEOUT}s (ready after: ${ready:-never}, healthy after: ${healthy:-never})"
}

# check_api PORT: classify the sample upright and turned, fetch the page; prints a JSON object.
check_api() {
  "$PYTHON" - "$1" "$SAMPLE" <<'EOF'
import json
import sys
import urllib.error
import urllib.request
import uuid

port, sample = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"


def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def classify(query):
    boundary = uuid.uuid4().hex
    with open(sample, "rb") as stream:
        data = stream.read()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="seven.png"\r\n'
        f"Content-Type: image/png\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        base + "/classify" + query, data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        sys.exit(f"POST /classify{query}: HTTP {error.code}: {error.read()[:500]!r}")


ready = json.loads(get("/readyz")[2])
upright = classify("")
turned = classify("?group=C4&element=1")
status, content_type, page = get("/")
result = {
    "ready": ready,
    "upright": {p["model"]: p["digit"] for p in upright["predictions"]},
    "turned_90": {p["model"]: p["digit"] for p in turned["predictions"]},
    "probabilities_sum": {p["model"]: round(sum(p["probabilities"]), 4) for p in upright["predictions"]},
    "page": {"status": status, "content_type": content_type, "has_title": b"Equivariant digits" in page},
    "script_status": get("/static/app.js")[0],
}
json.dump(result, sys.stdout)
EOF
}

# process_uids CONTAINER: the UIDs of every process in the container, seen from the host.
process_uids() {
  docker top "$1" -eo pid,uid | awk 'NR > 1 {print $2}' | sort -un | paste -sd, -
}

# -- build --------------------------------------------------------------------
mkdir -p "$(dirname "$REPORT")"
log "building $IMAGE (TORCH_INDEX_URL=${TORCH_INDEX_URL:-<default index>})"
build_start=$(now)
docker build --network host --label "$LABEL" --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL" -t "$IMAGE" . >&2
build_s=$(since "$build_start")
docker image prune -f --filter "label=$LABEL" >/dev/null # earlier smoke builds this one replaced
image_bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE")
image_user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
log "built in ${build_s}s: $((image_bytes / 1000000)) MB, user '$image_user'"
[ "$image_user" != "" ] && [ "$image_user" != root ] && [ "$image_user" != 0 ] || die "the image runs as root"

# -- docker run ------------------------------------------------------------------
port=$(free_port)
CONTAINER=equivariant-digits-smoke-$$
log "docker run $IMAGE on 127.0.0.1:$port"
run_start=$(now)
docker run -d --name "$CONTAINER" --network host --cpus 2 --memory 1536m \
  -e UVICORN_HOST=127.0.0.1 -e UVICORN_PORT="$port" -e GCNN_TORCH_THREADS=2 \
  --health-interval 2s "$IMAGE" >/dev/null
times=$(wait_ready "$CONTAINER" "$port" "$run_start")
read -r run_ready_s run_healthy_s <<<"$times"
log "ready ${run_ready_s}s, healthy ${run_healthy_s}s after docker run"
run_api=$(check_api "$port")
run_uids=$(process_uids "$CONTAINER")
stop_start=$(now)
docker stop -t 30 "$CONTAINER" >/dev/null # the drain: at most 20 s, then the exit (app/guard/shutdown.py)
run_stop_s=$(since "$stop_start")
run_exit=$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")
docker rm "$CONTAINER" >/dev/null
CONTAINER=""
log "docker run: answers $run_api; process uids $run_uids; stopped in ${run_stop_s}s with exit code $run_exit"

# -- compose ----------------------------------------------------------------------
compose_json=null
if [ "$SMOKE_COMPOSE" = 1 ]; then
  PROJECT=edsmoke$$
  export PORT HOST=127.0.0.1
  PORT=$(free_port)
  dc=("${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml -f docker-compose.host.yml)
  log "${COMPOSE[*]} up --build (project $PROJECT) on 127.0.0.1:$PORT"
  "${dc[@]}" config -q
  previous_image=$(docker image inspect -f '{{.Id}}' equivariant-digits:latest 2>/dev/null || true)
  up_start=$(now)
  "${dc[@]}" up -d --build >&2
  current_image=$(docker image inspect -f '{{.Id}}' equivariant-digits:latest)
  if [ -n "$previous_image" ] && [ "$previous_image" != "$current_image" ]; then
    docker rmi "$previous_image" >/dev/null 2>&1 || true # the build this one replaced, unless still in use
  fi
  cid=$("${dc[@]}" ps -q app)
  [ -n "$cid" ] || die "compose started no container"
  times=$(wait_ready "$cid" "$PORT" "$up_start")
  read -r compose_ready_s compose_healthy_s <<<"$times"
  log "compose: ready ${compose_ready_s}s, healthy ${compose_healthy_s}s after up"
  compose_api=$(check_api "$PORT")
  compose_uids=$(process_uids "$cid")
  compose_limits=$(docker inspect -f '{"nano_cpus": {{.HostConfig.NanoCpus}}, "memory": {{.HostConfig.Memory}}, "restart": "{{.HostConfig.RestartPolicy.Name}}", "network_mode": "{{.HostConfig.NetworkMode}}", "read_only": {{.HostConfig.ReadonlyRootfs}}}' "$cid")
  "${dc[@]}" stop --timeout 30 >&2
  compose_exit=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
  "${dc[@]}" down --remove-orphans --timeout 30 >&2
  PROJECT_DONE=$PROJECT
  PROJECT=""
  leftover_networks=$(docker network ls -q --filter "name=${PROJECT_DONE}" | wc -l)
  leftover_containers=$(docker ps -aq --filter "label=com.docker.compose.project=${PROJECT_DONE}" | wc -l)
  log "compose: answers $compose_api; process uids $compose_uids; limits $compose_limits"
  compose_json=$(printf '{"ready_s": %s, "healthy_s": %s, "api": %s, "process_uids": [%s], "host_config": %s, "leftover_networks": %s, "leftover_containers": %s, "exit_code": %s}' \
    "$compose_ready_s" "$compose_healthy_s" "$compose_api" "$compose_uids" "$compose_limits" "$leftover_networks" \
    "$leftover_containers" "$compose_exit")
fi

printf '{"image": "%s", "image_bytes": %s, "image_user": "%s", "build_s": %s, "torch_index_url": "%s", "run": {"ready_s": %s, "healthy_s": %s, "api": %s, "process_uids": [%s], "stop_s": %s, "exit_code": %s}, "compose": %s}\n' \
  "$IMAGE" "$image_bytes" "$image_user" "$build_s" "$TORCH_INDEX_URL" "$run_ready_s" "$run_healthy_s" "$run_api" \
  "$run_uids" "$run_stop_s" "$run_exit" "$compose_json" >"$REPORT"

# The checks: both models right on the upright 7, the G-CNN also on the quarter-turned one, nobody root.
"$PYTHON" - "$REPORT" <<'EOF'
import json
import sys

report = json.load(open(sys.argv[1]))
problems = []
for where in ("run", "compose"):
    part = report.get(where)
    if part is None:
        continue
    api = part["api"]
    models = api["ready"]["models"]
    if len(models) < 2:
        problems.append(f"{where}: expected the CNN and the G-CNN, /readyz lists {models}")
    if any(digit != 7 for digit in api["upright"].values()):
        problems.append(f"{where}: upright 7 classified as {api['upright']}")
    if any(name.startswith("gcnn") and digit != 7 for name, digit in api["turned_90"].items()):
        problems.append(f"{where}: the G-CNN misses the 7 turned 90 degrees: {api['turned_90']}")
    if any(abs(total - 1) > 1e-3 for total in api["probabilities_sum"].values()):
        problems.append(f"{where}: probabilities do not sum to 1: {api['probabilities_sum']}")
    if api["page"] != {"status": 200, "content_type": "text/html; charset=utf-8", "has_title": True}:
        problems.append(f"{where}: demo page: {api['page']}")
    if 0 in part["process_uids"] or not part["process_uids"]:
        problems.append(f"{where}: processes run as uids {part['process_uids']}")
for where, part in (("docker stop", report["run"]), ("docker-compose stop", report.get("compose"))):
    if part is not None and part["exit_code"] != 0:  # 137 would be a SIGKILL after the stop timeout
        problems.append(f"{where}: the service exited with {part['exit_code']}, not 0 (graceful shutdown)")
if report.get("compose"):
    compose = report["compose"]
    if compose["leftover_networks"] or compose["leftover_containers"]:
        problems.append(f"compose down left {compose['leftover_networks']} networks, {compose['leftover_containers']} containers")
    if compose["host_config"]["network_mode"] != "host":
        problems.append(f"compose network mode: {compose['host_config']['network_mode']}")
if problems:
    sys.exit("smoke checks failed:\n  " + "\n  ".join(problems))
EOF
log "passed: $((image_bytes / 1000000)) MB image, ready ${run_ready_s}s after docker run; report in $REPORT"
