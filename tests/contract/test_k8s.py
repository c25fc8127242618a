"""deploy/k8s (which cannot be applied on these machines: no kubectl, no cluster) stays in step
with the code: every service, its port, probes, settings, secrets, autoscaling and topics job.

The manifests are rendered by a small Python renderer of the kustomize subset deploy/k8s uses —
`resources` (files and directories), `namespace`, `images`, and `patches` given by `path`
holding one strategic-merge patch each (merge by name, `null` deletes a key, `$patch: delete`
deletes the object). Anything else in a kustomization.yaml fails the render, so the subset
cannot grow without the renderer.
"""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path

import pytest
import yaml

from shared.contracts.topics import DEFAULT_PARTITIONS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "production")
SERVICES = {"venues": 8001, "registration": 8002, "replays": 8003, "notifications": 8004, "portal": 8000}
BACKENDS = ("venues", "registration", "replays", "notifications")
AUTOSCALED = ("registration", "notifications")
JWT_SECRET = "intercotour-jwt"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


# --------------------------------------------------------------------------- the renderer

SUPPORTED_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
# Lists merged element by element (strategic merge), by this key; other lists are replaced.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


def _key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _merge(base, patch, field: str | None = None):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        merge_key = MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = next((i for i, old in enumerate(out) if old.get(merge_key) == item.get(merge_key)), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = _merge(out[match], item, field)
        return out
    return copy.deepcopy(patch)


def _split_image(image: str) -> tuple[str, str]:
    """'repo/name:tag' -> ('repo/name', ':tag'); the suffix keeps a digest ('@sha256:...')."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
        return name, ":" + tag
    return image, ""


def _pod_specs(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    return [template] if template else []


def _set_images(objects: list[dict], images: list[dict]) -> None:
    for obj in objects:
        for pod in _pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, suffix = _split_image(container["image"])
                for rule in images:
                    if rule["name"] == name:
                        new_name = rule.get("newName", name)
                        if "digest" in rule:
                            suffix = "@" + rule["digest"]
                        elif "newTag" in rule:
                            suffix = ":" + str(rule["newTag"])
                        container["image"] = new_name + suffix


def render(directory: Path) -> list[dict]:
    """What `kustomize build directory` prints, for the subset deploy/k8s uses."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    assert not unsupported, f"{directory}: kustomization fields the test renderer does not know: {unsupported}"
    objects: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else _load_docs(path)
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, f"{directory}: only `patches: - path:` is supported, got {entry}"
        (patch,) = _load_docs(directory / entry["path"])
        target = _key(patch)
        index = next((i for i, obj in enumerate(objects) if _key(obj) == target), None)
        assert index is not None, f"{directory}/{entry['path']}: no {target} to patch"
        if patch.get("$patch") == "delete":
            del objects[index]
        else:
            objects[index] = _merge(objects[index], patch)
    _set_images(objects, kustomization.get("images", []))
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    keys = [_key(obj) for obj in objects]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"{directory}: objects defined twice: {duplicates}"
    return objects


RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
BASE = render(K8S / "base")


def find(objects: list[dict], kind: str, name: str) -> dict:
    for obj in objects:
        if _key(obj) == (kind, name):
            return obj
    raise AssertionError(f"no {kind} {name!r} in the rendered manifests")


def kinds(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def container_of(objects: list[dict], service: str) -> dict:
    pod = find(objects, "Deployment", service)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == service]
    return container


def port_number(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return match


def environment(objects: list[dict], service: str) -> dict[str, str]:
    """The variables envFrom gives the service's container (Secrets not rendered: the base templates)."""
    env: dict[str, str] = {}
    for source in container_of(objects, service)["envFrom"]:
        if "configMapRef" in source:
            env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            name = source["secretRef"]["name"]
            secrets = kinds(objects, "Secret")
            secret = secrets.get(name) or find(BASE, "Secret", name)
            env.update(secret.get("stringData", {}) | secret.get("data", {}))
    return env


def settings_fields(service: str) -> set[str]:
    try:
        module = importlib.import_module(f"{service}.config")
    except Exception as exc:  # not skipped: a service without settings cannot be deployed
        pytest.fail(f"{service}.config cannot be imported ({exc!r}): cannot check the manifests' variables")
    return set(module.Settings.model_fields)


# --------------------------------------------------------------------------- the renderer itself


def test_renderer_merges_by_name_deletes_and_refuses_unknown_targets(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {X: '1', Y: '2'}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {Z: '3'}\n")
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / "p1.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {X: null, W: '4'}\n")
    (tmp_path / "p2.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n$patch: delete\n")
    (tmp_path / "kustomization.yaml").write_text(
        "namespace: n\nresources: [base]\npatches: [{path: p1.yaml}, {path: p2.yaml}]\n")
    objects = render(tmp_path)
    assert objects == [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"},
                        "data": {"Y": "2", "W": "4"}}]
    (tmp_path / "p2.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: missing}\n$patch: delete\n")
    with pytest.raises(AssertionError, match="no .* to patch"):
        render(tmp_path)


# --------------------------------------------------------------------------- every service


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_deployment_service_and_serviceaccount(overlay, service):
    objects = RENDERED[overlay]
    port = SERVICES[service]
    deployment = find(objects, "Deployment", service)
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == service
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["spec"]["serviceAccountName"] == service
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert find(objects, "ServiceAccount", service)["automountServiceAccountToken"] is False

    container = container_of(objects, service)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    svc = find(objects, "Service", service)
    assert svc["spec"]["selector"].items() <= labels.items(), f"{service}: Service selects no pod"
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port
    assert port_number(container, svc_port["targetPort"]) == port
    assert all(obj["metadata"].get("namespace") == "intercotour" for obj in (deployment, svc))


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_probes_resources_and_security(overlay, service):
    objects = RENDERED[overlay]
    port = SERVICES[service]
    container = container_of(objects, service)
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{service}: {probe} must GET {path}"
        assert port_number(container, http["port"]) == port
    if "startupProbe" in container:
        assert port_number(container, container["startupProbe"]["httpGet"]["port"]) == port
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{service}: resources.{bound}"

    pod = find(objects, "Deployment", service)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod.get("enableServiceLinks") is False
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_is_a_setting_of_the_service(overlay, service):
    prefix = f"{service.upper()}_"
    env = environment(RENDERED[overlay], service)
    fields = settings_fields(service)
    unknown = [key for key in env if not key.startswith(prefix) or key[len(prefix):].lower() not in fields]
    assert unknown == [], f"{service} ({overlay}): variables no setting reads: {unknown}"
    assert env[f"{prefix}MODE"] == "production"
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert env[f"{prefix}HTTP_PORT"] == str(SERVICES[service])
    assert env[f"{prefix}LOG_FORMAT"] == "json"
    # Secrets only through the Secret, never in a ConfigMap.
    config = find(RENDERED[overlay], "ConfigMap", f"{service}-config")["data"]
    assert not [key for key in config if re.search(r"SECRET|PASSWORD", key)], f"{service}: a secret in the ConfigMap"


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_sets_what_docker_compose_sets(service):
    missing = set(COMPOSE["services"][service]["environment"]) - set(environment(RENDERED["local"], service))
    assert missing == set(), f"{service}: docker-compose.yml sets {sorted(missing)}, deploy/k8s does not"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", BACKENDS)
def test_backends_get_their_infrastructure_secrets_and_key(overlay, service):
    objects = RENDERED[overlay]
    prefix = f"{service.upper()}_"
    env = environment(objects, service)
    for name in ("MONGO_URL", "KAFKA_BOOTSTRAP", "LINK_SECRET", "JWT_PUBLIC_KEY_FILE"):
        assert f"{prefix}{name}" in env, f"{service} lacks {prefix}{name}"
    assert "replicaSet=rs0" in env[f"{prefix}MONGO_URL"], "transactions need the replica set"
    assert env[f"{prefix}KAFKA_IDEMPOTENT"] == "true", "real Kafka runs the idempotent producer"
    secret = find(BASE, "Secret", f"{service}-secrets")
    assert f"{prefix}LINK_SECRET" in secret["stringData"], "the link secret must come from the Secret"

    pod = find(objects, "Deployment", service)["spec"]["template"]["spec"]
    container = container_of(objects, service)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/keys"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == JWT_SECRET
    items = volume["secret"].get("items", [])
    assert all(item["key"] == item["path"] for item in items), "each key file keeps its name"
    files = {item["key"] for item in items} or {"jwt_private.pem", "jwt_public.pem"}
    assert env[f"{prefix}JWT_PUBLIC_KEY_FILE"] == "/keys/jwt_public.pem" and "jwt_public.pem" in files
    if service == "venues":
        assert env["VENUES_KEYS_DIR"] == "/keys" and "jwt_private.pem" in files
    else:
        assert files == {"jwt_public.pem"}, f"{service} must not see venues' private key"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_portal_reaches_every_backend_service(overlay):
    objects = RENDERED[overlay]
    env = environment(objects, "portal")
    for service in BACKENDS:
        assert env[f"PORTAL_{service.upper()}_URL"] == f"http://{service}:{SERVICES[service]}"
    assert "PORTAL_SESSION_SECRET" in find(BASE, "Secret", "portal-secrets")["stringData"]
    # The portal verifies no token itself: it gets no key.
    mounts = [m["mountPath"] for m in container_of(objects, "portal")["volumeMounts"]]
    assert "/keys" not in mounts


# --------------------------------------------------------------------------- scaling and topics


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_is_bounded_by_the_partitions(overlay):
    objects = RENDERED[overlay]
    hpas = kinds(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == set(AUTOSCALED)
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= DEFAULT_PARTITIONS, \
            f"{name}: more consumers than the {DEFAULT_PARTITIONS} partitions would sit idle"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
        assert "replicas" not in find(objects, "Deployment", name)["spec"], f"{name}: the HPA owns the replica count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_topics_job_creates_the_shared_topic_list(overlay):
    objects = RENDERED[overlay]
    job = find(objects, "Job", "kafka-topics")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container.get("command", []) + container.get("args", [])
    assert argv[:3] == ["python", "-m", "shared.messaging.create_topics"]
    assert argv[argv.index("--partitions") + 1] == str(DEFAULT_PARTITIONS)
    assert argv[argv.index("--bootstrap") + 1] == "$(KAFKA_BOOTSTRAP)"
    (bootstrap,) = [e for e in container["env"] if e["name"] == "KAFKA_BOOTSTRAP"]
    ref = bootstrap["valueFrom"]["configMapKeyRef"]
    bootstrap_value = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    assert bootstrap_value == environment(objects, "venues")["VENUES_KAFKA_BOOTSTRAP"]
    assert container["image"] == container_of(objects, "venues")["image"], "runs from the venues image"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


# --------------------------------------------------------------------------- the overlays


def test_local_runs_kafka_mongo_and_mailpit_in_the_cluster():
    objects = RENDERED["local"]
    workloads = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] in ("StatefulSet", "Deployment")}
    images = {name: w["spec"]["template"]["spec"]["containers"][0]["image"] for name, w in workloads.items()}
    assert images["kafka"] == "apache/kafka:3.9.1"
    assert images["mongo"] == "mongo:8.0.4"
    assert images["mailpit"] == "axllent/mailpit:v1.21.8"
    mongo = workloads["mongo"]["spec"]["template"]["spec"]["containers"][0]
    assert mongo["command"][mongo["command"].index("--replSet") + 1] == "rs0"
    # Every address the services are given resolves to a Service of the overlay.
    services = kinds(objects, "Service")
    for service in BACKENDS:
        env = environment(objects, service)
        prefix = f"{service.upper()}_"
        mongo_host = re.match(r"mongodb://([^:/,]+)", env[f"{prefix}MONGO_URL"]).group(1)
        kafka_host = env[f"{prefix}KAFKA_BOOTSTRAP"].split(":")[0]
        assert {mongo_host, kafka_host} <= set(services)
    smtp = environment(objects, "notifications")
    smtp_ports = [p["port"] for p in services[smtp["NOTIFICATIONS_SMTP_HOST"]]["spec"]["ports"]]
    assert int(smtp["NOTIFICATIONS_SMTP_PORT"]) in smtp_ports
    for service in SERVICES:
        assert find(objects, "Deployment", service)["spec"].get("replicas", 1) == 1
        assert container_of(objects, service)["image"] == f"intercotour/{service}:dev"
    # The JWT pair is made in the cluster, by a Job allowed to create Secrets and nothing else.
    job = find(objects, "Job", "keys-init")
    assert JWT_SECRET in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    rules = find(objects, "Role", "keys-init")["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert "change-me" not in yaml.safe_dump_all(kinds(objects, "Secret").values()), "local secrets must be filled in"


def test_production_uses_external_infrastructure_and_pinned_images():
    objects = RENDERED["production"]
    assert not [obj for obj in objects if obj["kind"] == "StatefulSet"], "no in-cluster Kafka or MongoDB in production"
    for service in BACKENDS:
        env = environment(objects, service)
        prefix = f"{service.upper()}_"
        url = env[f"{prefix}MONGO_URL"]
        assert "replicaSet=" in url and len(url.split("//")[1].split("/")[0].split(",")) >= 3, url
        assert len(env[f"{prefix}KAFKA_BOOTSTRAP"].split(",")) >= 3
        assert env[f"{prefix}PUBLIC_BASE_URL"].startswith("https://")
    job = find(objects, "Job", "kafka-topics")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][job["args"].index("--replication") + 1] == "3"
    hpas = kinds(objects, "HorizontalPodAutoscaler")
    pdbs = kinds(objects, "PodDisruptionBudget")
    for service in SERVICES:
        deployment = find(objects, "Deployment", service)
        replicas = hpas[service]["spec"]["minReplicas"] if service in hpas else deployment["spec"]["replicas"]
        assert replicas >= 2, f"{service}: production runs 2+ replicas"
        assert pdbs[service]["spec"]["selector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()
        assert pdbs[service]["spec"]["minAvailable"] < replicas
        image = container_of(objects, service)["image"]
        name, tag = _split_image(image)
        assert name.endswith(f"intercotour/{service}") and tag and tag != ":latest", f"{service}: unpinned {image}"


def test_production_secrets_come_from_the_secret_manager():
    objects = RENDERED["production"]
    assert kinds(objects, "Secret") == {}, "production must not overwrite the secret manager's Secrets"
    assert "change-me" not in yaml.safe_dump_all(objects)
    for service in SERVICES:
        refs = [s["secretRef"] for s in container_of(objects, service)["envFrom"] if "secretRef" in s]
        assert refs == [{"name": f"{service}-secrets"}], f"{service}: a required secretRef to its Secret"
        # The Secret comes last, so a credentialed MONGO_URL put there overrides the ConfigMap's.
        assert "secretRef" in container_of(objects, service)["envFrom"][-1]
