"""The cluster-launcher configs and KubeRay manifests in cluster/, checked offline.

Which check rests on what:
- Launcher YAMLs (cluster/launcher/): against Ray's own schema, ray/autoscaler/ray-schema.json
  of the installed Ray, and through Ray's own offline preparation (prepare_config, then
  validate_config: what `ray up` runs before it contacts a host or a cloud). Upstream checks.
- KubeRay manifests (cluster/kuberay/): against a vendored subset of KubeRay's CRD schema,
  tests/data/kuberay/ray.io_v1.subset.schema.yaml (its header names the source file and
  commit). No package we found ships the CRD schemas: this is a faithful copy, not upstream.
- Both: structural checks of ours (token auth on every node, a private dashboard, the spec the
  RayJob runs is the one its ConfigMap holds, one Ray version everywhere...).
- Optional: the pod templates and the ConfigMap against Kubernetes' own schemas, when the
  kubernetes-validate package is installed (it ships them; it has none for ray.io).
Each negative test breaks a copy and expects the check to reject it, so none is vacuous.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path, PurePosixPath

import click
import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tunehouse.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
LAUNCHERS = {name: CLUSTER / "launcher" / f"{name}.yaml" for name in ("onprem", "aws")}
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
KUBERAY_SCHEMA = ROOT / "tests" / "data" / "kuberay" / "ray.io_v1.subset.schema.yaml"
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
K8S_VERSION = "1.30"  # oldest Kubernetes the manifests are meant for


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _launcher(name: str) -> dict:
    return yaml.safe_load(LAUNCHERS[name].read_text())


def _kind(path: Path, kind: str) -> dict:
    (doc,) = [d for d in _docs(path) if d.get("kind") == kind]
    return doc


# A broken copy is one edit of a loaded file: delete, rename or set one item.
class Rename:
    def __init__(self, new: str):
        self.new = new


DELETE = object()


def _edit(doc, path: list, value=DELETE) -> None:
    """Delete, rename or set the item at ``path`` (keys and list indexes) of ``doc``."""
    *parents, last = path
    for p in parents:
        doc = doc[p]
    if value is DELETE:
        del doc[last]
    elif isinstance(value, Rename):
        doc[value.new] = doc.pop(last)
    else:
        doc[last] = value


def _at(error_path, path: list) -> bool:
    """Whether an error is about the edited item: the item itself, or its parent (a required
    or an unknown key)."""
    return tuple(error_path) in (tuple(path), tuple(path[:-1]))


# -- launcher configs: Ray's schema and Ray's own preparation ------------------------------


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    return json.loads(RAY_SCHEMA.read_text())


def _ray_up_checks(config: dict) -> dict:
    """What `ray up` does to a config before any SSH or cloud call (commands._bootstrap_config)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_matches_rays_schema(name, ray_schema):
    jsonschema.validate(_launcher(name), ray_schema)


def test_onprem_config_passes_rays_preparation():
    config = _launcher("onprem")
    prepared = _ray_up_checks(config)
    # The local provider turns the host list into its single node type, all hosts kept.
    n = len(config["provider"]["worker_ips"])
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == prepared["max_workers"] == n
    head_setup = prepared["head_setup_commands"]
    assert head_setup[: len(config["setup_commands"])] == config["setup_commands"]


def test_aws_config_passes_rays_preparation():
    config = _launcher("aws")
    prepared = _ray_up_checks(config)
    types = prepared["available_node_types"]
    assert set(types) == set(config["available_node_types"])
    assert prepared["head_node_type"] == "ray.head.default"
    assert types["ray.head.default"]["max_workers"] == 0
    with_b = [t for t, spec in types.items() if "worker_b" in spec["resources"]]
    assert with_b == ["ray.worker.b"]
    # Our keys win over Ray's AWS defaults (defaults.update(config) is shallow).
    assert prepared["docker"]["image"] == config["docker"]["image"]
    assert prepared["worker_start_ray_commands"] == config["worker_start_ray_commands"]


WORKER_B = ["available_node_types", "ray.worker.b"]
BROKEN_LAUNCHERS = [
    # launcher, what, path, new value, does Ray's preparation still get to the schema check
    ("onprem", "misspelt top-level key", ["setup_commands"], Rename("setup_comands"), True),
    ("onprem", "commands as one string", ["head_start_ray_commands"], "ray start --head", True),
    ("onprem", "worker_ips not a list", ["provider", "worker_ips"], "10.0.0.11", False),
    ("onprem", "no cluster_name", ["cluster_name"], DELETE, False),  # Ray's defaults fill it in
    ("aws", "max_workers as a string", ["max_workers"], "5", True),
    ("aws", "custom resource as a string", [*WORKER_B, "resources", "worker_b"], "1", True),
    ("aws", "misspelt node type field", [*WORKER_B, "min_workers"], Rename("min_worker"), True),
    ("aws", "node type without node_config", [*WORKER_B, "node_config"], DELETE, True),
    ("aws", "no provider", ["provider"], DELETE, False),
]


@pytest.mark.parametrize(
    ("name", "path", "value", "prepares"),
    [pytest.param(n, p, v, r, id=f"{n}: {what}") for n, what, p, v, r in BROKEN_LAUNCHERS],
)
def test_broken_launcher_config_is_rejected(name, path, value, prepares, ray_schema):
    config = _launcher(name)
    _edit(config, path, value)
    with pytest.raises(jsonschema.ValidationError) as raw:
        jsonschema.validate(config, ray_schema)
    assert _at(raw.value.absolute_path, path), raw.value.message
    if prepares:
        with pytest.raises(jsonschema.ValidationError) as prepared:
            _ray_up_checks(config)
        assert _at(prepared.value.absolute_path, path), prepared.value.message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(["provider", "head_ip"], DELETE, id="no head_ip"),
        pytest.param(
            ["available_node_types"],
            {"w": {"resources": {}, "node_config": {}}},
            id="node types on the local provider",
        ),
    ],
)
def test_rays_preparation_rejects_broken_onprem_config(path, value):
    # Ray's local-provider rules, beyond the schema: it needs a head and a host list, and it
    # refuses node types (it makes its own).
    config = _launcher("onprem")
    _edit(config, path, value)
    with pytest.raises(click.ClickException):
        _ray_up_checks(config)


# -- launcher configs: our own rules ---------------------------------------------------------


def _start_commands(config: dict) -> dict[str, list[str]]:
    return {k: config[k] for k in ("head_start_ray_commands", "worker_start_ray_commands")}


def _launcher_problems(config: dict, text: str) -> list[str]:
    problems = []
    for key, cmds in _start_commands(config).items():
        starts = [c for c in cmds if "ray start" in c]
        if not starts:
            problems.append(f"{key}: no `ray start`")
        for c in starts:
            # Each command runs in a shell of its own, so the export must be in the same one.
            before = c[: c.index("ray start")]
            if not re.search(r"\bRAY_AUTH_MODE=token\b", before):
                problems.append(f"{key}: `ray start` without RAY_AUTH_MODE=token before it")
    head = " ".join(config["head_start_ray_commands"])
    if "--dashboard-host=127.0.0.1" not in head:
        problems.append("head: dashboard not bound to 127.0.0.1")
    if "0.0.0.0" in text:
        problems.append("0.0.0.0 appears in the file")
    if config.get("file_mounts", {}).get("~/.ray/auth_token") != "~/.ray/auth_token":
        problems.append("the auth token is not copied to the nodes")
    if not any("tunehouse[cluster]" in c and "pip install" in c for c in config["setup_commands"]):
        problems.append("setup_commands do not pip install tunehouse[cluster]")
    return problems


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_uses_token_auth_and_a_private_dashboard(name):
    assert _launcher_problems(_launcher(name), LAUNCHERS[name].read_text()) == []


def _replace_in_last(key: str, old: str, new: str):
    def apply(config):
        config[key][-1] = config[key][-1].replace(old, new)

    return apply


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _replace_in_last("worker_start_ray_commands", "export RAY_AUTH_MODE=token;", ""),
            "worker_start_ray_commands: `ray start` without RAY_AUTH_MODE=token",
            id="worker start without token auth",
        ),
        pytest.param(
            _replace_in_last("head_start_ray_commands", "127.0.0.1", "0.0.0.0"),
            "dashboard not bound to 127.0.0.1",
            id="dashboard on every interface",
        ),
        pytest.param(
            lambda c: c["file_mounts"].clear(), "token is not copied", id="token not copied"
        ),
        pytest.param(
            lambda c: c.__setitem__("setup_commands", ["pip install tunehouse"]),
            "tunehouse[cluster]",
            id="no cluster extra",
        ),
    ],
)
def test_launcher_rules_catch_a_broken_copy(mutate, expected):
    config = _launcher("onprem")
    mutate(config)
    problems = _launcher_problems(config, yaml.safe_dump(config))
    assert any(expected in p for p in problems), problems


# -- KubeRay manifests: the vendored CRD schema subset -----------------------------------------

_INT_LIMITS = {"int32": 2**31, "int64": 2**63}
_FORMATS = jsonschema.FormatChecker(formats=())
for _fmt, _limit in _INT_LIMITS.items():
    # The API server enforces these integer formats; jsonschema knows neither.
    _FORMATS.checks(_fmt)(lambda v, _limit=_limit: not isinstance(v, int) or -_limit <= v < _limit)


@pytest.fixture(scope="module")
def kuberay_errors():
    root = yaml.safe_load(KUBERAY_SCHEMA.read_text())
    validators = {
        kind: jsonschema.Draft202012Validator(
            {**root, "$ref": f"#/$defs/{kind}"}, format_checker=_FORMATS
        )
        for kind in ("RayCluster", "RayJob")
    }

    def errors(doc: dict) -> list[tuple[tuple, str]]:
        return [
            (tuple(e.absolute_path), e.message) for e in validators[doc["kind"]].iter_errors(doc)
        ]

    return errors


@pytest.fixture(scope="module", autouse=True)
def _schema_is_valid():
    jsonschema.Draft202012Validator.check_schema(yaml.safe_load(KUBERAY_SCHEMA.read_text()))


@pytest.mark.parametrize(("path", "kind"), [(RAYCLUSTER, "RayCluster"), (RAYJOB, "RayJob")])
def test_kuberay_manifest_matches_the_crd_schema(path, kind, kuberay_errors):
    doc = _kind(path, kind)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", kind)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert kuberay_errors(doc) == []


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


AUTOSCALER = ["spec", "autoscalerOptions"]
HEAD = ["spec", "headGroupSpec"]
HEAD_POD = [*HEAD, "template", "spec"]
HEAD_C = [*HEAD_POD, "containers", 0]
CPU = ["spec", "workerGroupSpecs", 0]
CPU_C = [*CPU, "template", "spec", "containers", 0]
B = ["spec", "workerGroupSpecs", 1]
JOB_HEAD_POD = ["spec", "rayClusterSpec", *HEAD_POD[1:]]
BROKEN_KUBERAY = [
    # what, file, path, new value
    ("no headGroupSpec", RAYCLUSTER, HEAD, DELETE),
    ("misspelt field", RAYCLUSTER, ["spec", "workerGroupSpecs"], Rename("workerGroupSpec")),
    ("rayStartParams value not a string", RAYCLUSTER, [*HEAD, "rayStartParams", "num-cpus"], 0),
    ("minReplicas as a string", RAYCLUSTER, [*CPU, "minReplicas"], "1"),
    ("maxReplicas past int32", RAYCLUSTER, [*CPU, "maxReplicas"], 2**31),
    ("worker group without groupName", RAYCLUSTER, [*B, "groupName"], DELETE),
    ("worker group without rayStartParams", RAYCLUSTER, [*CPU, "rayStartParams"], DELETE),
    ("container without a name", RAYCLUSTER, [*HEAD_C, "name"], DELETE),
    ("misspelt container field", RAYCLUSTER, [*HEAD_C, "env"], Rename("environment")),
    ("memory not a quantity", RAYCLUSTER, [*CPU_C, "resources", "limits", "memory"], "4 GB"),
    ("port without containerPort", RAYCLUSTER, [*HEAD_C, "ports", 0, "containerPort"], DELETE),
    (
        "upscalingMode not in the enum",
        RAYCLUSTER,
        [*AUTOSCALER, "upscalingMode"],
        "Fast",
    ),
    ("no containers", RAYCLUSTER, [*HEAD_POD, "containers"], DELETE),
    ("field from a newer KubeRay", RAYCLUSTER, ["spec", "authOptions"], {"mode": "token"}),
    ("no entrypoint", RAYJOB, ["spec", "entrypoint"], DELETE),
    ("shutdownAfterJobFinishes as a string", RAYJOB, ["spec", "shutdownAfterJobFinishes"], "true"),
    ("volume without a name", RAYJOB, [*JOB_HEAD_POD, "volumes", 0, "name"], DELETE),
]


@pytest.mark.parametrize(
    ("file", "path", "value"), [pytest.param(f, p, v, id=what) for what, f, p, v in BROKEN_KUBERAY]
)
def test_broken_kuberay_manifest_is_rejected(file, path, value, kuberay_errors):
    doc = _kind(file, "RayCluster" if file == RAYCLUSTER else "RayJob")
    _edit(doc, path, value)
    errors = kuberay_errors(doc)
    assert any(_at(where, path) for where, _ in errors), errors


# -- KubeRay manifests: our own rules ------------------------------------------------------------

RAY_PORTS = {6379: "gcs-server", 8265: "dashboard", 10001: "client"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _pod_templates(doc: dict) -> list[tuple[str, dict]]:
    spec = _cluster_spec(doc)
    found = [("head", spec["headGroupSpec"]["template"])]
    found += [
        (f"worker group {g['groupName']}", g["template"]) for g in spec.get("workerGroupSpecs", [])
    ]
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        found.append(("submitter", doc["spec"]["submitterPodTemplate"]))
    return found


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _kuberay_problems(doc: dict) -> list[str]:
    problems = []
    spec = _cluster_spec(doc)
    images = set()
    token_refs = set()
    for where, template in _pod_templates(doc):
        for c in template["spec"]["containers"]:
            name = c.get("name", "")
            if not (DNS_LABEL.fullmatch(name) and len(name) <= 63):
                problems.append(f"{where}: container name {name!r} is not a DNS label")
            if not c.get("image"):
                problems.append(f"{where}: container {name!r} has no image")
            images.add(c.get("image"))
            env = _env(c)
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
                problems.append(f"{where}: no RAY_AUTH_MODE=token")
            ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef")
            if not ref:
                problems.append(f"{where}: RAY_AUTH_TOKEN does not come from a Secret")
            else:
                token_refs.add((ref.get("name"), ref.get("key")))
            if where != "submitter" and not any(
                s.get("secretRef", {}).get("name") == "tunehouse-s3" for s in c.get("envFrom", [])
            ):
                problems.append(f"{where}: no catalog credentials (envFrom secretRef tunehouse-s3)")
    if spec.get("enableInTreeAutoscaling"):
        env = _env(spec.get("autoscalerOptions", {}))
        if env.get("RAY_AUTH_MODE", {}).get("value") != "token" or "RAY_AUTH_TOKEN" not in env:
            problems.append("autoscaler: no token auth")
    if len(token_refs) > 1:
        problems.append(f"containers use different tokens: {sorted(token_refs)}")
    if len(images) > 1:
        problems.append(f"containers run different images: {sorted(map(str, images))}")

    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = {p["containerPort"]: p.get("name") for p in head.get("ports", [])}
    if ports != RAY_PORTS:
        problems.append(f"head ports {ports}, expected {RAY_PORTS}")

    with_b = []
    for g in spec.get("workerGroupSpecs", []):
        if not g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"]:
            problems.append(f"worker group {g['groupName']}: replicas outside [min, max]")
        raw = g["rayStartParams"].get("resources")
        if raw is None:
            continue
        # KubeRay hands the value to `ray start --resources=` through a shell: a quoted JSON
        # string holding the JSON object.
        try:
            resources = json.loads(json.loads(raw))
        except (TypeError, ValueError):
            problems.append(
                f"worker group {g['groupName']}: resources {raw!r} is not a quoted JSON string"
            )
            continue
        if "worker_b" in resources:
            with_b.append((g["groupName"], resources))
    if [r for _, r in with_b] != [{"worker_b": 1}]:
        problems.append(f"expected one worker group with {{'worker_b': 1}}, got {with_b}")
    return problems


@pytest.mark.parametrize(("path", "kind"), [(RAYCLUSTER, "RayCluster"), (RAYJOB, "RayJob")])
def test_kuberay_manifest_follows_our_rules(path, kind):
    assert _kuberay_problems(_kind(path, kind)) == []


BROKEN_RULES = [
    # what, path, new value, the problem expected
    ("head without token auth", [*HEAD_C, "env"], DELETE, "head: no RAY_AUTH_MODE=token"),
    ("worker without catalog credentials", [*CPU_C, "envFrom"], DELETE, "cpu: no catalog"),
    ("autoscaler without token", [*AUTOSCALER, "env"], DELETE, "autoscaler: no token auth"),
    ("head without the client port", [*HEAD_C, "ports", 2], DELETE, "head ports"),
    ("container name not a DNS label", [*HEAD_C, "name"], "Ray_Head", "not a DNS label"),
    (
        "custom resource without KubeRay's quoting",
        [*B, "rayStartParams", "resources"],
        '{"worker_b": 1}',
        "not a quoted JSON string",
    ),
    ("no worker_b group", [*B, "rayStartParams"], {}, "expected one worker group"),
    ("replicas above max", [*CPU, "replicas"], 9, "replicas outside [min, max]"),
    ("mixed images", [*HEAD_C, "image"], "other:1", "different images"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), [pytest.param(p, v, e, id=w) for w, p, v, e in BROKEN_RULES]
)
def test_kuberay_rules_catch_a_broken_copy(path, value, expected):
    doc = _kind(RAYCLUSTER, "RayCluster")
    _edit(doc, path, value)
    problems = _kuberay_problems(doc)
    assert any(expected in p for p in problems), problems


def _rayjob_problems(docs: list[dict]) -> list[str]:
    """The RayJob runs `tunehouse run` on a spec its ConfigMap holds, against object storage."""
    problems = []
    job = next(d for d in docs if d["kind"] == "RayJob")
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    argv = shlex.split(job["spec"]["entrypoint"])
    if argv[:2] != ["tunehouse", "run"] or len(argv) < 3:
        return [f"entrypoint {argv} is not `tunehouse run SPEC ...`"]
    spec_path = PurePosixPath(argv[2])
    catalog = argv[argv.index("--catalog") + 1] if "--catalog" in argv[:-1] else None
    if not (catalog or "").startswith("s3://"):
        problems.append(f"--catalog {catalog!r}: trials on other pods cannot reach it; use s3://")
    if job["spec"].get("shutdownAfterJobFinishes") is not True:
        problems.append("shutdownAfterJobFinishes is not true: the cluster outlives the job")

    head = _cluster_spec(job)["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"]: v for v in head.get("volumes", [])}
    mounts = [
        m
        for m in head["containers"][0].get("volumeMounts", [])
        if spec_path.is_relative_to(m["mountPath"])
    ]
    if not mounts:
        return [*problems, f"{spec_path} is on no volume mounted in the head container"]
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    source = volumes.get(mount["name"], {}).get("configMap")
    if source is None:
        return [*problems, f"volume {mount['name']!r} is not a ConfigMap volume"]
    configmap = configmaps.get(source.get("name"))
    if configmap is None:
        return [*problems, f"ConfigMap {source.get('name')!r} is not in the file"]
    rel = str(spec_path.relative_to(mount["mountPath"]))
    items = {i["path"]: i["key"] for i in source.get("items", [])}
    key = items.get(rel, rel if not items else None)
    text = configmap.get("data", {}).get(key)
    if text is None:
        return [*problems, f"ConfigMap {source['name']!r} has no key for {rel!r}"]
    parse_spec(text, file=f"ConfigMap {source['name']}/{key}")  # raises SpecError if invalid
    return problems


def test_rayjob_runs_the_spec_its_configmap_holds():
    docs = _docs(RAYJOB)
    assert {d["kind"] for d in docs} == {"ConfigMap", "RayJob"}
    assert _rayjob_problems(docs) == []
    # The copy in the ConfigMap is the repository's quickstart, word for word.
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert (
        configmap["data"]["quickstart.yaml"]
        == (ROOT / "search_spaces" / "quickstart.yaml").read_text()
    )


def _job_entrypoint(entrypoint: str):
    return lambda docs: _edit(docs[1], ["spec", "entrypoint"], entrypoint)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _job_entrypoint("tunehouse run /specs/other.yaml --catalog s3://b/p"),
            "has no key for 'other.yaml'",
            id="spec not in the ConfigMap",
        ),
        pytest.param(
            _job_entrypoint("tunehouse run /specs/quickstart.yaml"), "use s3://", id="local catalog"
        ),
        pytest.param(
            _job_entrypoint("python train.py"), "is not `tunehouse run", id="not tunehouse run"
        ),
        pytest.param(
            lambda docs: _edit(docs[1], [*JOB_HEAD_POD, "containers", 0, "volumeMounts"]),
            "on no volume mounted",
            id="spec volume not mounted",
        ),
        pytest.param(
            lambda docs: _edit(docs[0], ["data", "quickstart.yaml"], Rename("spec.yaml")),
            "has no key for 'quickstart.yaml'",
            id="key not in the ConfigMap",
        ),
        pytest.param(lambda docs: docs.pop(0), "is not in the file", id="no ConfigMap"),
        pytest.param(
            lambda docs: _edit(docs[1], ["spec", "shutdownAfterJobFinishes"], False),
            "shutdownAfterJobFinishes",
            id="cluster kept",
        ),
    ],
)
def test_rayjob_rules_catch_a_broken_copy(mutate, expected):
    docs = _docs(RAYJOB)
    assert [d["kind"] for d in docs] == ["ConfigMap", "RayJob"]
    mutate(docs)
    problems = _rayjob_problems(docs)
    assert any(expected in p for p in problems), problems


def test_rayjob_spec_that_tunehouse_rejects_fails():
    docs = _docs(RAYJOB)
    docs[0]["data"]["quickstart.yaml"] += "bogus_field: 1\n"
    with pytest.raises(Exception, match="bogus_field"):
        _rayjob_problems(docs)


def test_every_secret_the_manifests_use_is_documented():
    def secret_names(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("secretKeyRef", "secretRef"):
                    yield v["name"]
                else:
                    yield from secret_names(v)
        elif isinstance(node, list):
            for v in node:
                yield from secret_names(v)

    used = {n for path in (RAYCLUSTER, RAYJOB) for d in _docs(path) for n in secret_names(d)}
    assert used == {"tunehouse-ray-auth", "tunehouse-s3"}
    readme = (CLUSTER / "README.md").read_text()
    for name in used:
        assert f"kubectl create secret generic {name}" in readme, name


# -- one Ray version everywhere ----------------------------------------------------------------


def test_every_file_runs_the_installed_ray_version():
    # Ray needs the same version on every node and on the machine that attaches or submits;
    # this fails when Ray here is upgraded and cluster/ is not.
    found = []
    for path in [*LAUNCHERS.values(), CLUSTER / "Dockerfile"]:
        text = path.read_text()
        found += [(path.name, v) for v in re.findall(r"ray\[[a-z,]+\]==([\w.]+)", text)]
        found += [(path.name, v) for v in re.findall(r"rayproject/ray:([\d.]+)", text)]
    for path, kind in ((RAYCLUSTER, "RayCluster"), (RAYJOB, "RayJob")):
        found.append((path.name, _cluster_spec(_kind(path, kind))["rayVersion"]))
    assert {name for name, _ in found} == {
        "onprem.yaml",
        "aws.yaml",
        "Dockerfile",
        "raycluster.yaml",
        "rayjob.yaml",
    }
    assert [f for f in found if f[1] != ray.__version__] == []


# -- optional: Kubernetes' own schemas for the Pod templates and the ConfigMap -------------------


def test_pod_templates_and_configmap_match_kubernetes_schemas():
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (ships Kubernetes' JSON schemas) is not installed",
    )

    def check(template: dict) -> None:
        # A KubeRay pod template is a core/v1 PodTemplateSpec: wrap it in a PodTemplate.
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
        kv.validate({**wrapped, "template": template}, K8S_VERSION, strict=True)

    for path, kind in ((RAYCLUSTER, "RayCluster"), (RAYJOB, "RayJob")):
        for where, template in _pod_templates(_kind(path, kind)):
            try:
                check(template)
            except kv.ValidationError as e:
                pytest.fail(f"{path.name} {where}: {e}")
    kv.validate(_docs(RAYJOB)[0], K8S_VERSION, strict=True)  # the ConfigMap

    broken = _kind(RAYCLUSTER, "RayCluster")
    _edit(broken, [*HEAD_C, "env"], Rename("environment"))
    with pytest.raises(kv.ValidationError):
        check(_pod_templates(broken)[0][1])
