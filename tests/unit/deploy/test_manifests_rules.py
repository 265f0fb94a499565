"""The project's own rules over the rendered manifests (deploy/k8s/README.md): Kafka's topics and
users follow the event catalog and the services' real consumers, no consumer group scales past
its topic's partitions, every Deployment has probes, limits, a locked-down container and network
policies, every secret the code reads is wired, prod spreads and protects its replicas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from ccshared import dlq
from ccshared.events.catalog import CATALOG, DLQ_SUFFIX
from ccshared.service import ConsumerSpec
from ccshared.settings import KafkaClientSettings
from console.settings import ConsoleSettings
from feedback.settings import FeedbackSettings
from intake.settings import IntakeSettings
from router.settings import RouterSettings
from sla.settings import SLASettings
from tests.unit.deploy.manifests import (
    CONSUMERS,
    K8S,
    OVERLAYS,
    SERVICES,
    Object,
    container,
    env_of,
    example_secrets,
    named,
    of_kind,
    pod_specs,
    pod_template,
    render,
)

SETTINGS: dict[str, Any] = {
    "intake": IntakeSettings,
    "router": RouterSettings,
    "sla": SLASettings,
    "feedback": FeedbackSettings,
    "console": ConsoleSettings,
}
# What the console shows live: it reads these from the end, without a consumer group.
CONSOLE_TOPICS = {"router.tickets", "sla.events", "feedback.events"}
# Secrets the operators make: one per KafkaUser (Strimzi's User Operator), the cluster CA.
OPERATOR_SECRETS = {*SERVICES, "contactcenter-cluster-ca-cert"}


def consumer_specs(service: str, monkeypatch: pytest.MonkeyPatch) -> list[ConsumerSpec]:
    """The consumers the service's create_app really wires (not a list kept here)."""
    module = __import__(f"{service}.app", fromlist=["create_app"])
    seen: list[ConsumerSpec] = []
    real = module.create_service_app

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.extend(kwargs.get("consumers") or [])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "create_service_app", recording)
    module.create_app(SETTINGS[service]())
    return seen


def groups_of(service: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """{consumer group: topics} as the service names them (ccshared.service)."""
    return {f"{service}.{s.name}": list(s.topics) for s in consumer_specs(service, monkeypatch)}


def _topics(objects: list[Object]) -> dict[str, Object]:
    return {t["metadata"]["name"]: t for t in of_kind(objects, "KafkaTopic")}


def _acls(user: Object) -> Iterator[tuple[str, str, str]]:
    """(resource type, name, operation) of each ACL entry."""
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        assert resource.get("patternType", "literal") == "literal", acl  # no prefix wildcards
        for operation in acl["operations"]:
            yield resource["type"], resource.get("name", ""), operation


# -- Kafka: topics and users ---------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_catalog_topic_and_its_dead_letter_twin_has_a_kafka_topic(overlay: str) -> None:
    topics = _topics(render(overlay))
    assert set(topics) == set(CATALOG.all_topic_names())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_a_service_consumes_has_a_kafka_topic(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = _topics(render(overlay))
    for service in CONSUMERS:
        for group, consumed in groups_of(service, monkeypatch).items():
            for topic in consumed:
                assert topic in topics, f"{group} reads {topic}, which has no KafkaTopic"
                assert topic + DLQ_SUFFIX in topics


@pytest.mark.parametrize(
    ("overlay", "replicas", "min_insync"), [("dev", 1, 1), ("prod", 3, 2)], ids=OVERLAYS
)
def test_topics_replication_and_retention(overlay: str, replicas: int, min_insync: int) -> None:
    objects = render(overlay)
    config = named(objects, "ConfigMap", "contactcenter")["data"]
    brokers = named(objects, "KafkaNodePool", "dual-role")["spec"]["replicas"]
    for name, topic in _topics(objects).items():
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "contactcenter"
        assert (spec["replicas"], spec["config"]["min.insync.replicas"]) == (replicas, min_insync)
        assert spec["replicas"] <= brokers
        assert spec["partitions"] == int(config["TOPIC_PARTITIONS"])
        retention = str(spec["config"]["retention.ms"])
        if name.endswith(DLQ_SUFFIX):
            assert retention == "-1", f"{name}: dead letters are never deleted"
        else:
            assert int(retention) >= 24 * 3600 * 1000
    assert (int(config["TOPIC_REPLICATION_FACTOR"]), int(config["TOPIC_MIN_INSYNC_REPLICAS"])) == (
        replicas,
        min_insync,
    )


def test_prod_runs_three_kraft_brokers_and_dev_one() -> None:
    for overlay, count in (("dev", 1), ("prod", 3)):
        pool = named(render(overlay), "KafkaNodePool", "dual-role")["spec"]
        assert pool["replicas"] == count
        assert set(pool["roles"]) == {"controller", "broker"}  # KRaft: no ZooKeeper


@pytest.mark.parametrize("service", CONSUMERS)
def test_a_services_kafka_user_may_do_what_its_code_does_and_nothing_more(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render("prod")
    user = named(objects, "KafkaUser", service)
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    groups = groups_of(service, monkeypatch)
    consumed = {t for topics in groups.values() for t in topics}
    produced = {t.name for t in CATALOG.produced_by(service)}
    # What the catalog says it reads, its code reads.
    assert consumed == {t.name for t in CATALOG.consumed_by(service)}
    expected = (
        {("topic", t, "Write") for t in produced | {c + DLQ_SUFFIX for c in consumed}}
        | {("topic", t, "Describe") for t in produced | consumed}
        | {("topic", c + DLQ_SUFFIX, "Describe") for c in consumed}
        | {("topic", t, "Read") for t in consumed}
        | {("group", g, "Read") for g in groups}
        | {("group", "contactcenter.dlq-handled", "Describe"), ("cluster", "", "IdempotentWrite")}
    )
    assert set(_acls(user)) == expected
    # The Deployment logs in as this user.
    env = env_of(container(objects, "Deployment", service))
    assert env[f"{service.upper()}_KAFKA_SASL_USERNAME"]["value"] == service
    password = env[f"{service.upper()}_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": service, "key": "password"}  # the User Operator's Secret


def test_the_consoles_kafka_user_reads_what_it_shows_without_a_group_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render("prod")
    assert groups_of("console", monkeypatch) == {}  # no consumer group: nothing to commit
    assert {t for t in CONSOLE_TOPICS if t in CATALOG.all_topic_names()} == CONSOLE_TOPICS
    user = named(objects, "KafkaUser", "console")
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert set(_acls(user)) == {
        ("topic", t, operation) for t in CONSOLE_TOPICS for operation in ("Read", "Describe")
    }
    env = env_of(container(objects, "Deployment", "console"))
    assert env["CONSOLE_KAFKA_SASL_USERNAME"]["value"] == "console"
    password = env["CONSOLE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "console", "key": "password"}
    [listener] = named(objects, "Kafka", "contactcenter")["spec"]["kafka"]["listeners"]
    [pods] = [p for p in listener["networkPolicyPeers"] if "podSelector" in p]
    assert "console" in pods["podSelector"]["matchExpressions"][0]["values"]


def test_the_kafka_listener_is_tls_with_scram_and_acls_are_enforced() -> None:
    kafka = named(render("prod"), "Kafka", "contactcenter")["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    for listener in kafka["listeners"]:
        assert listener["tls"] is True
        assert listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["config"]["auto.create.topics.enable"] is False


# -- Scaling -------------------------------------------------------------------------------


def _consumed_by_deployment(service: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    return {t for topics in groups_of(service, monkeypatch).values() for t in topics}


@pytest.mark.parametrize("service", CONSUMERS)
def test_no_service_scales_past_the_partitions_of_a_topic_it_consumes(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule of deploy/k8s/README.md, "Scaling": a consumer group's members beyond its
    topic's partitions get no partition."""
    objects = render("prod")
    topics = _topics(objects)
    partitions = min(
        topics[t]["spec"]["partitions"] for t in _consumed_by_deployment(service, monkeypatch)
    )
    scaled = [o for o in of_kind(objects, "ScaledObject") if o["metadata"]["name"] == service]
    hpas = [
        o
        for o in of_kind(objects, "HorizontalPodAutoscaler")
        if o["spec"]["scaleTargetRef"]["name"] == service
    ]
    assert len(scaled) + len(hpas) == 1, "one autoscaler per Deployment"
    minimum, maximum = _scale_range(objects, service)
    assert minimum <= maximum <= partitions


def _scale_range(objects: list[Object], service: str) -> tuple[int, int]:
    """(min, max) replicas of the service's one autoscaler."""
    for o in of_kind(objects, "ScaledObject"):
        if o["spec"]["scaleTargetRef"]["name"] == service:
            return o["spec"]["minReplicaCount"], o["spec"]["maxReplicaCount"]
    [hpa] = [
        o
        for o in of_kind(objects, "HorizontalPodAutoscaler")
        if o["spec"]["scaleTargetRef"]["name"] == service
    ]
    return hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]


def test_the_console_scales_on_cpu_alone() -> None:
    """No consumer group, so no lag and no partition ceiling: CPU (its pages and streams)."""
    objects = render("prod")
    assert "console" not in {o["metadata"]["name"] for o in of_kind(objects, "ScaledObject")}
    hpa = named(objects, "HorizontalPodAutoscaler", "console")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "console",
    }
    [metric] = hpa["metrics"]
    assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]


@pytest.mark.parametrize("service", ["router", "sla", "feedback"])
def test_keda_scales_on_the_lag_of_every_consumer_group_of_the_service(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render("prod")
    scaled = named(objects, "ScaledObject", service)
    config = named(objects, "ConfigMap", "contactcenter")["data"]
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
    assert {t["metadata"]["consumerGroup"]: [t["metadata"]["topic"]] for t in triggers} == (
        groups_of(service, monkeypatch)
    )
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP"]
        assert meta["allowIdleConsumers"] == "false"
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
        assert trigger["authenticationRef"]["name"] in {
            o["metadata"]["name"] for o in of_kind(objects, "TriggerAuthentication")
        }
    keda = named(objects, "KafkaUser", "keda")
    allowed = set(_acls(keda))
    for trigger in triggers:
        assert ("group", trigger["metadata"]["consumerGroup"], "Describe") in allowed
        assert ("topic", trigger["metadata"]["topic"], "Describe") in allowed
    assert {operation for _, _, operation in allowed} == {"Describe"}


# -- Workloads -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes_requests_and_limits(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(SERVICES)
    for deployment in deployments:
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] == "http", (deployment, probe)
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][side]), (deployment, side)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_without_capabilities(overlay: str) -> None:
    for workload, pod in pod_specs(render(overlay)):
        name = workload["metadata"]["name"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"]:
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            assert any(
                m["mountPath"] == "/tmp" and m["name"] in tmp  # noqa: S108 - the pod's emptyDir
                for m in c["volumeMounts"]
            ), name


def _selects(policy: Object, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_is_denied_but_what_a_network_policy_allows(overlay: str) -> None:
    objects = render(overlay)
    policies = of_kind(objects, "NetworkPolicy")
    deny = named(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for workload, _pod in pod_specs(objects):
        labels = pod_template(workload)["metadata"]["labels"]
        mine = [
            p for p in policies if p["spec"]["podSelector"] and _selects(p, labels)
        ]  # beyond the namespace-wide deny and DNS
        directions = {t for p in mine for t in p["spec"]["policyTypes"]}
        expected = {"Ingress", "Egress"} if workload["kind"] == "Deployment" else {"Egress"}
        assert directions == expected, workload["metadata"]["name"]
    # Out of the cluster: only intake (deliveries) and feedback (webhooks), by name.
    leaving = {
        p["metadata"]["name"]
        for p in policies
        for rule in p["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }
    assert leaving == {"intake-outbound-delivery", "feedback-webhooks"}
    for name in leaving:
        for rule in named(objects, "NetworkPolicy", name)["spec"]["egress"]:
            for peer in rule["to"]:
                assert "10.0.0.0/8" in peer["ipBlock"]["except"]  # not the cluster's network


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_reaches_the_apis_it_calls_and_they_take_its_calls(overlay: str) -> None:
    objects = render(overlay)
    policies = of_kind(objects, "NetworkPolicy")
    console = {"app.kubernetes.io/name": "console"}
    env = env_of(container(objects, "Deployment", "console"))
    for api in ("router", "sla", "feedback"):
        assert env[f"CONSOLE_{api.upper()}_URL"]["value"] == f"http://{api}"
        named(objects, "Service", api)  # the URL's host is the API's Service
        labels = {"app.kubernetes.io/name": api}
        out = [
            rule
            for p in policies
            if p["spec"]["podSelector"] and _selects(p, console)
            for rule in p["spec"].get("egress", [])
            if any(
                _selects({"spec": {"podSelector": to["podSelector"]}}, labels)
                for to in rule.get("to", [])
                if "podSelector" in to
            )
        ]
        assert out, f"no egress from the console to {api}"
        into = [
            rule
            for p in policies
            if p["spec"]["podSelector"] and _selects(p, labels)
            for rule in p["spec"].get("ingress", [])
            if any(
                _selects({"spec": {"podSelector": src["podSelector"]}}, console)
                for src in rule.get("from", [])
                if "podSelector" in src
            )
        ]
        assert into, f"{api} takes no calls from the console"


# -- Secrets and settings ------------------------------------------------------------------


def test_only_the_console_holds_the_token_issuers_private_key() -> None:
    objects = render("prod")
    readers = {
        workload["metadata"]["name"]
        for workload, pod in pod_specs(objects)
        for c in pod["containers"]
        for var in c.get("env", [])
        if var.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "console-token-key"
    }
    assert readers == {"console"}  # not even its migrate Job
    env = env_of(container(objects, "Deployment", "console"))
    key = env["CONSOLE_TOKEN_PRIVATE_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "console-token-key", "key": "private-key"}
    # Nothing else of that Secret in the one every service reads.
    assert "private-key" not in example_secrets()["contactcenter"]


def _secret_fields(service: str) -> set[str]:
    """The settings that hold a secret: SecretStr fields, and the token issuer's key."""
    fields = SETTINGS[service].model_fields
    found = {name for name, f in fields.items() if f.annotation is SecretStr}
    return found | ({"auth_public_key"} & set(fields))


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_the_code_reads_comes_from_a_secret_that_exists(service: str) -> None:
    objects = render("prod")
    env = env_of(container(objects, "Deployment", service))
    prefix = f"{service.upper()}_"
    known = set(example_secrets()) | OPERATOR_SECRETS
    refs = {
        name: var["valueFrom"]["secretKeyRef"]
        for name, var in env.items()
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    for ref in refs.values():
        assert ref["name"] in known, ref
        if ref["name"] in example_secrets():
            assert ref["key"] in example_secrets()[ref["name"]], ref
    for field in _secret_fields(service):
        var = env.get(prefix + field.upper())
        assert var is not None, f"{prefix}{field.upper()} is not set"
        if "value" in var:  # $(NAME) references another variable, itself from a Secret
            used = re.findall(r"\$\((\w+)\)", var["value"])
            assert used, var
            assert all(u in refs for u in used), var
        else:
            assert prefix + field.upper() in refs, var


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_logs_in_to_its_own_database_with_the_role_cloudnativepg_manages(
    service: str,
) -> None:
    objects = render("prod")
    cluster = named(objects, "Cluster", "contactcenter-pg")["spec"]
    [role] = [r for r in cluster["managed"]["roles"] if r["name"] == service]
    assert role["login"] is True
    assert role.get("superuser", False) is False
    database = named(objects, "Database", service)["spec"]
    assert (database["name"], database["owner"], database["cluster"]["name"]) == (
        service,
        service,
        "contactcenter-pg",
    )
    for kind, name in (("Deployment", service), ("Job", f"{service}-migrate")):
        env = env_of(container(objects, kind, name))
        url = env[f"{service.upper()}_DATABASE_URL"]["value"]
        assert url == (
            f"postgresql+asyncpg://{service}:$(DB_PASSWORD)@contactcenter-pg-rw:5432/{service}"
        )
        password = env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": role["passwordSecret"]["name"], "key": "password"}


# -- Production ----------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_prod_spreads_and_protects_every_services_replicas(service: str) -> None:
    objects = render("prod")
    deployment = named(objects, "Deployment", service)
    selector = deployment["spec"]["selector"]["matchLabels"]
    # The autoscaler owns the count: a replicas field would be re-applied by every deploy.
    assert "replicas" not in deployment["spec"]
    minimum, _ = _scale_range(objects, service)
    assert minimum >= 2
    pod = deployment["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread.values())
    [anti] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    pdb = named(objects, "PodDisruptionBudget", service)["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert pdb["minAvailable"] < minimum  # a drain can proceed
    monitor = named(objects, "ServiceMonitor", service)["spec"]
    assert (
        monitor["selector"]["matchLabels"] == named(objects, "Service", service)["spec"]["selector"]
    )
    assert [(e["port"], e["path"]) for e in monitor["endpoints"]] == [("http", "/metrics")]


def test_dev_runs_one_replica_of_each_and_no_autoscaler() -> None:
    objects = render("dev")
    assert {d["spec"]["replicas"] for d in of_kind(objects, "Deployment")} == {1}
    assert named(objects, "Cluster", "contactcenter-pg")["spec"]["instances"] == 1
    assert not of_kind(objects, "ScaledObject")
    assert not of_kind(objects, "HorizontalPodAutoscaler")


# -- The operators' dead-letter tool -------------------------------------------------------


def test_the_dead_letter_tool_may_read_dead_letters_and_replay_them_and_nothing_more() -> None:
    user = named(render("prod"), "KafkaUser", "dlq-admin")
    names = [t.name for t in CATALOG.topics.values()]
    assert set(_acls(user)) == (
        {("topic", n + DLQ_SUFFIX, op) for n in names for op in ("Read", "Describe")}
        | {("topic", n, op) for n in names for op in ("Write", "Describe")}
        | {("group", "contactcenter.dlq-handled", op) for op in ("Read", "Describe")}
        | {("cluster", "", "IdempotentWrite")}
    )


def test_the_dead_letter_pod_is_locked_down_logs_in_as_its_user_and_reaches_kafka() -> None:
    pod = yaml.safe_load((K8S / "tools" / "dlq-admin-pod.yaml").read_text())
    kubernetes_validate.validate(pod, "1.30.0", strict=True)
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    [c] = spec["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = env_of(c)
    fields = set(KafkaClientSettings.model_fields) | {"kafka_bootstrap"}
    for name in env:
        assert name.startswith(dlq.ENV_PREFIX), name
        assert name.removeprefix(dlq.ENV_PREFIX).lower() in fields, name
    assert env["DLQ_KAFKA_SASL_USERNAME"]["value"] == "dlq-admin"
    objects = render("prod")
    config = named(objects, "ConfigMap", "contactcenter")["data"]
    assert env["DLQ_KAFKA_BOOTSTRAP"]["value"] == config["KAFKA_BOOTSTRAP"]
    labels = pod["metadata"]["labels"]
    assert _selects(named(objects, "NetworkPolicy", "services-to-kafka"), labels)
    [listener] = named(objects, "Kafka", "contactcenter")["spec"]["kafka"]["listeners"]
    [pods] = [p for p in listener["networkPolicyPeers"] if "podSelector" in p]
    [expression] = pods["podSelector"]["matchExpressions"]
    assert labels["app.kubernetes.io/name"] in expression["values"]
