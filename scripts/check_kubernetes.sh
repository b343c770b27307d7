#!/usr/bin/env bash
# Validate deploy/kubernetes/ without a cluster:
#   1. every manifest against the Kubernetes OpenAPI schemas of pinned versions, strictly
#      (kubernetes-validate --strict: unknown fields fail), the oldest version we support and
#      the newest the pinned kubernetes-validate ships; an unknown kind or a removed apiVersion
#      (reported as a warning by the tool) fails too;
#   2. what schemas cannot see: kustomization.yaml lists exactly the manifests, every object is
#      in one namespace, selectors match the pod labels, the HPA, envFrom and probe references
#      resolve, resource quantities parse, and the Job runs the Deployment's image and is named
#      after its tag.
# Usage: scripts/check_kubernetes.sh [DIR]   (default deploy/kubernetes; exits non-zero on any
# failure). KUBERNETES_VERSIONS overrides the versions (space-separated).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-deploy/kubernetes}"
VERSIONS="${KUBERNETES_VERSIONS:-1.30.0 1.37.0}"
if [ -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-.venv/bin/python}"
  VALIDATE="${KUBERNETES_VALIDATE:-.cache/tools-venv/bin/kubernetes-validate}"
else
  PYTHON="${PYTHON:-python}"
  VALIDATE="${KUBERNETES_VALIDATE:-kubernetes-validate}"
fi
if ! command -v "$VALIDATE" >/dev/null 2>&1; then
  echo "FAILED kubernetes-validate not found: make lint installs it (.cache/tools-venv), or pip install -e '.[tools]'" >&2
  exit 2
fi

# Every manifest but kustomization.yaml (not a Kubernetes object: no schema).
manifests=()
while IFS= read -r f; do manifests+=("$f"); done < <(
  find "$DIR" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name kustomization.yaml ! -name kustomization.yml | sort
)
if [ "${#manifests[@]}" -eq 0 ]; then
  echo "FAILED no manifests in $DIR" >&2
  exit 1
fi

status=0
for version in $VERSIONS; do
  if out=$("$VALIDATE" --strict -k "$version" "${manifests[@]}" 2>&1); then rc=0; else rc=$?; fi
  printf '%s\n' "$out"
  if [ "$rc" -ne 0 ]; then
    echo "FAILED schema validation against Kubernetes $version" >&2
    status=1
  elif grep -q '^WARN' <<<"$out"; then
    echo "FAILED Kubernetes $version: a kind or apiVersion without a schema (see WARN above)" >&2
    status=1
  fi
done

"$PYTHON" - "$DIR" <<'PY' || status=1
"""Cross-references that the schemas cannot check."""

import re
import sys
from pathlib import Path

import yaml

directory = Path(sys.argv[1])
errors: list[str] = []
objects: list[tuple[str, dict]] = []
for path in sorted(directory.glob("*.y*ml")):
    if path.stem == "kustomization":
        continue
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            objects.append((path.name, doc))


def find(kind: str) -> list[dict]:
    return [doc for _name, doc in objects if doc.get("kind") == kind]


# kustomization.yaml lists every manifest, and only existing ones.
kustomization = directory / "kustomization.yaml"
if kustomization.exists():
    listed = set(yaml.safe_load(kustomization.read_text()).get("resources", []))
    files = {p.name for p in directory.glob("*.y*ml") if p.stem != "kustomization"}
    for name in sorted(files - listed):
        errors.append(f"kustomization.yaml: {name} is not listed in resources")
    for name in sorted(listed - files):
        errors.append(f"kustomization.yaml: lists {name}, which does not exist")
else:
    errors.append("no kustomization.yaml")

namespaces = {doc["metadata"]["name"] for doc in find("Namespace")}
for name, doc in objects:
    if doc["kind"] != "Namespace":
        ns = doc["metadata"].get("namespace")
        if ns not in namespaces:
            errors.append(f"{name}: namespace {ns!r} is not one of {sorted(namespaces)}")

QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
config_maps = {doc["metadata"]["name"] for doc in find("ConfigMap")}
secrets = {doc["metadata"]["name"] for doc in find("Secret")}
service_accounts = {doc["metadata"]["name"] for doc in find("ServiceAccount")}


def check_pod(where: str, spec: dict) -> None:
    account = spec.get("serviceAccountName")
    if account and account not in service_accounts:
        errors.append(f"{where}: serviceAccountName {account!r} is not defined")
    for container in spec.get("initContainers", []) + spec["containers"]:
        c = f"{where} container {container['name']}"
        ports = {p.get("name") for p in container.get("ports", [])} | {
            p["containerPort"] for p in container.get("ports", [])
        }
        for ref in container.get("envFrom", []):
            if "configMapRef" in ref and ref["configMapRef"]["name"] not in config_maps:
                errors.append(f"{c}: ConfigMap {ref['configMapRef']['name']!r} is not defined")
            if "secretRef" in ref and ref["secretRef"]["name"] not in secrets:
                errors.append(f"{c}: Secret {ref['secretRef']['name']!r} is not defined")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is not None and port not in ports:
                errors.append(f"{c}: {probe} port {port!r} is not a container port")
        for bound in ("requests", "limits"):
            for resource, value in container.get("resources", {}).get(bound, {}).items():
                if not QUANTITY.match(str(value)):
                    errors.append(f"{c}: {bound}.{resource} {value!r} is not a quantity")
        sc = container.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
            errors.append(f"{c}: must set allowPrivilegeEscalation false, readOnlyRootFilesystem")
    if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
        errors.append(f"{where}: pod securityContext.runAsNonRoot must be true")


deployments = find("Deployment")
if len(deployments) != 1:
    errors.append(f"expected one Deployment, found {len(deployments)}")
else:
    deployment = deployments[0]
    name = deployment["metadata"]["name"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict, where: str) -> None:
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{where}: selector {selector} does not match the API pods {pod_labels}")

    selects(deployment["spec"]["selector"]["matchLabels"], f"Deployment {name}")
    for service in find("Service"):
        selects(service["spec"]["selector"], f"Service {service['metadata']['name']}")
        target_ports = {p["targetPort"] for p in service["spec"]["ports"]}
        container_ports = {
            p.get("name") for c in deployment["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        if not target_ports <= container_ports:
            errors.append(f"Service: targetPort {target_ports - container_ports} not a pod port")
    for pdb in find("PodDisruptionBudget"):
        selects(pdb["spec"]["selector"]["matchLabels"], f"PDB {pdb['metadata']['name']}")
    for hpa in find("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != ("Deployment", name):
            errors.append(f"HPA {hpa['metadata']['name']}: targets {ref}, not Deployment {name}")
    check_pod(f"Deployment {name}", deployment["spec"]["template"]["spec"])

    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    for job in find("Job"):
        job_name = job["metadata"]["name"]
        job_spec = job["spec"]["template"]["spec"]
        check_pod(f"Job {job_name}", job_spec)
        for container in job_spec.get("initContainers", []) + job_spec["containers"]:
            if container["image"] != image:
                errors.append(f"Job {job_name}: runs {container['image']}, the API runs {image}")
        if tag and not job_name.endswith(tag.replace(".", "-")):
            errors.append(f"Job {job_name}: name it after the image tag {tag!r} (a new Job per release)")

for error in errors:
    print(f"FAILED {error}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"cross-references: {len(objects)} objects in {directory} consistent")
PY

if [ "$status" -eq 0 ]; then
  echo "kubernetes manifests OK (${#manifests[@]} files; Kubernetes $VERSIONS)"
fi
exit "$status"
