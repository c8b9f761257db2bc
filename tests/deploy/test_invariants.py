"""What no generic validator knows, asserted on the rendered YAML: the TF Serving flags the bot depends on, the
shared model_config_file, who may reach the admin port, drain time, pod hardening, budgets, probes, metrics, and
secrets only by reference."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.frontends.server import DRAIN_S, IN_FLIGHT_GRACE_S
from bot.policy_file import load_policy
from bot.settings import Settings, load_settings
from tests.deploy.manifests import (
    TARGETS,
    Obj,
    Rendered,
    container,
    containers,
    mount_for,
    pod_labels,
    pod_spec,
    selects,
)

TFS_BINARY = "/usr/bin/tensorflow_model_server"
GRPC_PORT = 8500
BOT_LABELS = {"app": "modelbot"}
CLIENT_LABELS = {"tf-serving-client": "true"}
MARGIN_S = 10  # outbox delivery and thread joins after the drain, with room to spare
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|DATABASE_URL|_KEY$")
SECRET_TEXT = re.compile(
    r"xox[abposr]-|xapp-|-----BEGIN|AKIA[0-9A-Z]{16}|\w+://[^/\s:@]+:[^/\s@]+@"  # Slack, PEM, AWS key, URL password
)


def _flags(args: list[str]) -> dict[str, str]:
    """--name=value (or a bare --name, meaning true) -> {name: value}; every argument must be a flag."""
    flags = {}
    for arg in args:
        assert arg.startswith("--"), f"not a flag: {arg!r}"
        name, _, value = arg[2:].partition("=")
        assert name not in flags, f"--{name} given twice"
        flags[name] = value or "true"
    return flags


def _tf_serving(r: Rendered) -> tuple[Obj, Obj]:
    workload = r.one("StatefulSet", "tf-serving")
    return workload, container(workload, "tf-serving")


def _bot(r: Rendered) -> tuple[Obj, Obj]:
    workload = r.one("Deployment", "modelbot")
    return workload, container(workload, "modelbot")


def _bot_settings(r: Rendered, tmp_path: Path) -> Settings:
    """The modelbot.yaml and permissions.yaml of the rendered ConfigMap, loaded the way `serve` loads them."""
    _, bot = _bot(r)
    env = {e["name"]: e.get("value") for e in bot["env"]}
    (config_map,) = [c for c in r.of_kind("ConfigMap") if c["metadata"]["name"].startswith("modelbot-config")]
    for key, text in config_map["data"].items():
        (tmp_path / key).write_text(text)
    assert Path(env["MODELBOT_CONFIG"]).name in config_map["data"]
    settings = load_settings(tmp_path / Path(env["MODELBOT_CONFIG"]).name)
    load_policy(tmp_path / Path(env["MODELBOT_PERMISSIONS"]).name, settings.models)
    return settings


def _grace_needed(bot: Obj) -> float:
    pre_stop = bot.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    return float(pre_stop) + DRAIN_S + IN_FLIGHT_GRACE_S + MARGIN_S


# --- TF Serving ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["tf-serving", "overlays/prod"])
def test_tf_serving_runs_with_the_flags_the_bot_depends_on(rendered: dict[str, Rendered], target: str) -> None:
    """The binary is started directly with the shared config file, no config poll, a filesystem poll >= 1 s,
    labels allowed for unavailable versions, mTLS from a Secret, and no REST port."""
    workload, tfs = _tf_serving(rendered[target])
    assert tfs["command"] == [TFS_BINARY]  # the image's entrypoint script would add --rest_api_port=8501
    flags = _flags(tfs["args"])
    assert flags["port"] == str(GRPC_PORT)
    assert flags["model_config_file"].startswith("/")
    assert "model_config_file_poll_wait_seconds" not in flags  # a poll reverts every reload the bot sends
    assert int(flags["file_system_poll_wait_seconds"]) >= 1  # 0 breaks reconfiguring existing models
    assert flags["allow_version_labels_for_unavailable_models"] == "true"
    assert flags.get("rest_api_port", "0") == "0"
    _, volume = mount_for(workload, tfs, flags["ssl_config_file"])
    assert volume["secret"]["secretName"] == "tf-serving-ssl"


def test_tf_serving_reads_the_model_config_file_the_bot_writes(prod: Rendered, tmp_path: Path) -> None:
    """--model_config_file is the bot's serving.model_config_file, on one ReadWriteMany claim: written by the
    bot, read-only in TF Serving."""
    settings = _bot_settings(prod, tmp_path)
    tfs_workload, tfs = _tf_serving(prod)
    bot_workload, bot = _bot(prod)
    path = _flags(tfs["args"])["model_config_file"]
    assert str(settings.serving.model_config_file) == path
    bot_mount, bot_volume = mount_for(bot_workload, bot, path)
    tfs_mount, tfs_volume = mount_for(tfs_workload, tfs, path)
    claim = bot_volume["persistentVolumeClaim"]["claimName"]
    assert tfs_volume["persistentVolumeClaim"]["claimName"] == claim
    assert not bot_mount.get("readOnly", False) and tfs_mount.get("readOnly") is True
    assert "ReadWriteMany" in prod.one("PersistentVolumeClaim", claim)["spec"]["accessModes"]


def test_the_bot_reaches_every_replica_through_the_headless_service(prod: Rendered, tmp_path: Path) -> None:
    """serving.targets names the headless Service (one address per pod, ready or not) on the gRPC port, and the
    bot's TLS files lie in its mounted Secret."""
    settings = _bot_settings(prod, tmp_path)
    (target,) = settings.serving.targets
    match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
    assert match, target
    service = prod.one("Service", match.group(1))
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert int(match.group(2)) == GRPC_PORT
    assert [p["port"] for p in service["spec"]["ports"]] == [GRPC_PORT]
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(_tf_serving(prod)[0]))
    bot_workload, bot = _bot(prod)
    tls = settings.serving.tls
    for path in (tls.ca_cert, tls.client_cert, tls.client_key):
        _, volume = mount_for(bot_workload, bot, str(path))
        assert volume["secret"]["secretName"] == "modelbot-tls"


@pytest.mark.parametrize("target", ["tf-serving", "overlays/prod"])
def test_network_policy_admits_only_the_bot_and_labelled_clients_on_8500(
    rendered: dict[str, Rendered], target: str
) -> None:
    """Every ingress rule for TF Serving pods opens 8500/TCP only, and only to the bot's pods (same namespace)
    or to pods labelled tf-serving-client=true: no IP blocks, no rule open to all."""
    r = rendered[target]
    tfs_labels = pod_labels(_tf_serving(r)[0])
    policies = [p for p in r.of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], tfs_labels)]
    assert policies, "no NetworkPolicy selects the TF Serving pods: every pod could connect"
    peers_seen = []
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("ports") == [{"protocol": "TCP", "port": GRPC_PORT}], rule
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule without `from` admits everyone"
            for peer in rule["from"]:
                assert "ipBlock" not in peer, peer
                labels = peer["podSelector"]["matchLabels"]
                if labels == BOT_LABELS:
                    assert "namespaceSelector" not in peer, "the bot is admitted from its own namespace only"
                else:
                    assert labels == CLIENT_LABELS, peer
                peers_seen.append(labels)
    assert BOT_LABELS in peers_seen and CLIENT_LABELS in peers_seen
    if target == "overlays/prod":
        assert selects({"matchLabels": BOT_LABELS}, pod_labels(_bot(r)[0]))  # the bot's pods carry the label


# --- the bot ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
def test_bot_grace_period_outlasts_the_drain(rendered: dict[str, Rendered], target: str) -> None:
    """terminationGracePeriodSeconds covers preStop, the rollout drain (DRAIN_S), in-flight HTTP and a margin,
    so SIGKILL never cuts a rollout that SIGTERM let finish."""
    workload, bot = _bot(rendered[target])
    assert pod_spec(workload)["terminationGracePeriodSeconds"] >= _grace_needed(bot)


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
def test_bot_probes_liveness_on_healthz_and_readiness_on_readyz(rendered: dict[str, Rendered], target: str) -> None:
    """Liveness and startup probe /healthz, readiness probes /readyz, all on the port the bot listens on."""
    _, bot = _bot(rendered[target])
    port = {e["name"]: e.get("value") for e in bot["env"]}["PORT"]
    names = {p["name"]: p["containerPort"] for p in bot["ports"]}
    probes = {kind: bot[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert {kind: get["path"] for kind, get in probes.items()} == {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    assert all(str(names.get(get["port"], get["port"])) == port for get in probes.values())


def test_prod_runs_two_bots_on_postgresql_from_a_secret(prod: Rendered) -> None:
    """The prod overlay runs 2 bot replicas spread over nodes, in its own namespace under the restricted Pod
    Security profile, with MODELBOT_DATABASE_URL taken from the modelbot-db Secret (bot and migration)."""
    workload, _ = _bot(prod)
    assert workload["spec"]["replicas"] == 2
    assert pod_spec(workload)["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    for ctr in containers(workload):
        (db,) = [e for e in ctr["env"] if e["name"] == "MODELBOT_DATABASE_URL"]
        assert "value" not in db and db["valueFrom"]["secretKeyRef"]["name"] == "modelbot-db", ctr["name"]
    (namespace,) = prod.of_kind("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    others = [o for o in prod.objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in others} == {namespace["metadata"]["name"]}


def test_prod_service_monitor_scrapes_the_bot_metrics(rendered: dict[str, Rendered], prod: Rendered) -> None:
    """The optional servicemonitor component, used by prod only, scrapes /metrics on the bot Service's http port."""
    assert not rendered["base"].of_kind("ServiceMonitor")
    (monitor,) = prod.of_kind("ServiceMonitor")
    service = prod.one("Service", "modelbot")
    scraped = [
        s for s in prod.of_kind("Service") if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
    ]
    assert scraped == [service]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]


# --- every workload -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_restricted(rendered: dict[str, Rendered], target: str) -> None:
    """Every pod runs as a non-root UID with seccomp RuntimeDefault and no service-account token; every container
    has a read-only root, no privilege escalation and drops ALL capabilities; no host namespaces or paths."""
    for workload in rendered[target].workloads():
        spec = pod_spec(workload)
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] > 0
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v]
        for ctr in containers(workload):
            ctx = ctr["securityContext"]
            where = f"{workload['metadata']['name']}/{ctr['name']}"
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx.get("privileged", False) is False, where
            assert ctx.get("runAsUser", pod_ctx["runAsUser"]) > 0, where


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_has_resource_requests_and_limits(rendered: dict[str, Rendered], target: str) -> None:
    """CPU and memory are requested and limited for every container, init containers included."""
    for workload in rendered[target].workloads():
        for ctr in containers(workload):
            resources = ctr.get("resources", {})
            for section in ("requests", "limits"):
                assert set(resources.get(section, {})) >= {"cpu", "memory"}, f"{ctr['name']}: {section}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_workload_has_a_disruption_budget_that_allows_drains(rendered: dict[str, Rendered], target: str) -> None:
    """Each Deployment and StatefulSet is covered by exactly one PodDisruptionBudget, which lets a drain evict
    one pod at a time (never zero: that would block node maintenance forever)."""
    budgets = rendered[target].of_kind("PodDisruptionBudget")
    for workload in rendered[target].workloads():
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(workload))]
        assert budget["spec"] == {"maxUnavailable": 1, "selector": budget["spec"]["selector"]}


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_appear_only_by_reference(rendered: dict[str, Rendered], target: str) -> None:
    """No Secret object and no secret-looking value anywhere: secret env vars use secretKeyRef, secret files come
    from Secret volumes readable by the pod's group only."""
    r = rendered[target]
    assert not r.of_kind("Secret")
    for obj in r.objects:
        for text in _strings(obj):
            assert not SECRET_TEXT.search(text), f"{obj['kind']}/{obj['metadata']['name']}: {text[:60]!r}"
    for workload in r.workloads():
        for ctr in containers(workload):
            assert "envFrom" not in ctr, f"{ctr['name']}: name each secret variable (secretKeyRef)"
            for env in ctr.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["defaultMode"] & 0o007 == 0, volume  # nothing for others
                assert volume["secret"]["defaultMode"] & 0o040, volume  # the pod's fsGroup reads it


@pytest.mark.parametrize("target", TARGETS)
def test_every_image_is_pinned(rendered: dict[str, Rendered], target: str) -> None:
    """Every image names its registry and a release tag or digest, never `latest`."""
    for workload in rendered[target].workloads():
        for ctr in containers(workload):
            image = ctr["image"]
            assert re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/[a-z0-9./_-]+(:[\w.-]+|@sha256:[0-9a-f]{64})", image), image
            assert not image.endswith(":latest"), image


def _strings(node: Any) -> list[str]:
    """Every string value in a parsed object (ConfigMap files are parsed too, when they are YAML)."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    if isinstance(node, str) and "\n" in node:
        try:
            return [node, *_strings(yaml.safe_load(node))]
        except yaml.YAMLError:
            return [node]
    return [node] if isinstance(node, str) else []
