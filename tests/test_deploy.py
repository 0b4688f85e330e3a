"""The deployment files, checked without a Docker engine or a cluster: the Dockerfile's structure
(stages, user, health check, entry point, no secrets, cache-friendly order), `.dockerignore`, the
compose file and every Kubernetes manifest (they parse, with the kinds and fields the bot needs),
and that every setting they pass is a real `Settings` key with a valid value. The health check
commands of the Dockerfile and the compose file are run against a local /healthz."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from adapters.cli import parser
from adapters.slack.settings import SlackSettings
from bot.settings import Settings, setting_names

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
SETTING_KEYS = set(setting_names())  # the core's and every adapter's
OPS_PORT = Settings.model_fields["ops_port"].default if "ops_port" in Settings.model_fields else 9102
SLACK_HTTP_PORT = SlackSettings.model_fields["http_port"].default
# Variables an image may set that are the runtime's, not the bot's settings.
RUNTIME_ENV = {
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
    "PIP_ROOT_USER_ACTION",
    "DEBIAN_FRONTEND",
}


def check_settings(values: dict[str, Any], where: str) -> None:
    """Every key is a setting, and the values are valid for it (as strings, as from the environment)."""
    unknown = sorted(set(values) - SETTING_KEYS)
    assert not unknown, f"{where} sets {unknown}, which are not settings (bot/settings.py)"
    Settings(_env_file=None, **{key.lower(): str(value) for key, value in values.items()})  # type: ignore[call-arg]


def interpolate(text: str) -> str:
    """Compose's ${VAR:-default} with no VAR set."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    name: str
    args: str
    stage: int  # index of the FROM it follows; -1 before the first


def dockerfile() -> list[Instruction]:
    """The instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if not line:
            continue
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append(Instruction(name, args.strip(), stage))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV KEY value`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck_argv() -> list[str]:
    (check,) = [i for i in final_stage(dockerfile()) if i.name == "HEALTHCHECK"]
    cmd = check.args.split(" CMD ", 1)
    assert len(cmd) == 2, "HEALTHCHECK ... CMD [...]"
    return exec_form(cmd[1].strip())


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether `path` (relative to the context) is left out of the build context (the last matching
    pattern decides; a directory's pattern covers what is inside it)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch(c, pattern[3:]) or fnmatch(c, pattern) for c in candidates) or any(
                fnmatch(part, pattern[3:]) for part in parts
            )
        else:
            hit = any(fnmatch(c, pattern) for c in candidates)
        if hit:
            result = not negate
    return result


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    instructions = dockerfile()
    froms = [i for i in instructions if i.name == "FROM"]
    assert len(froms) >= 2
    args = {
        a.args.split("=", 1)[0]: a.args.split("=", 1)[1]
        for a in instructions
        if a.stage == -1 and "=" in a.args
    }
    images = [
        re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), f.args.split()[0]) for f in froms
    ]
    assert all(image == "python:3.11-slim" for image in images), images
    stages = {f.args.split()[-1].lower() for f in froms if " as " in f.args.lower()}
    for copy in (i for i in instructions if i.name == "COPY" and "--from=" in i.args):
        source = re.search(r"--from=(\S+)", copy.args)
        assert source and source.group(1).lower() in stages, copy.args


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [i.args for i in final_stage(dockerfile()) if i.name == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"


def test_dockerfile_entry_point_and_command() -> None:
    final = final_stage(dockerfile())
    (entrypoint,) = [i for i in final if i.name == "ENTRYPOINT"]
    (cmd,) = [i for i in final if i.name == "CMD"]
    assert exec_form(entrypoint.args) == ["autogpt-bot"]
    assert exec_form(cmd.args) == ["run"]
    assert parser().parse_args(exec_form(cmd.args)).command == "run"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "autogpt-bot" in scripts


def test_dockerfile_health_check_calls_healthz_on_ops_port() -> None:
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    assert "/healthz" in code and "OPS_PORT" in code and f"'{OPS_PORT}'" in code
    assert "urllib" in code, "no curl in slim images"
    final = final_stage(dockerfile())
    exposed = {word for i in final if i.name == "EXPOSE" for word in i.args.split()}
    assert str(OPS_PORT) in exposed


def test_dockerfile_keeps_secrets_out() -> None:
    instructions = dockerfile()
    assert not [i for i in instructions if i.name == "ADD"], "COPY, not ADD"
    patterns = dockerignore()
    for copy in (i for i in instructions if i.name == "COPY" and "--from=" not in i.args):
        words = [w for w in copy.args.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert not Path(source).name.startswith(".env"), f"COPY {source}: secrets come at run time"
            if source in (".", "./"):
                assert ignored(".env", patterns)
    secretish = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)
    for i in instructions:
        if i.name in ("ENV", "ARG"):
            assert not secretish.search(i.args), f"{i.name} {i.args}: no secrets in the image"


def test_dockerfile_env_lines_are_settings() -> None:
    values: dict[str, str] = {}
    for i in dockerfile():
        if i.name == "ENV":
            values.update(env_pairs(i.args))
    settings = {k: v for k, v in values.items() if k not in RUNTIME_ENV}
    check_settings(settings, "the Dockerfile's ENV")
    assert settings.get("CHROMIUM_PATH") == "/usr/bin/chromium", "where Debian's chromium package puts it"
    assert settings.get("DATA_DIR") == "/data"


def test_dockerfile_chromium_is_optional() -> None:
    final = final_stage(dockerfile())
    args = [i.args for i in final if i.name == "ARG"]
    assert "WITH_CHROMIUM=0" in args, "Chromium is off unless --build-arg WITH_CHROMIUM=1"
    installs = [i.args for i in final if i.name == "RUN" and "chromium" in i.args]
    assert installs and all("$WITH_CHROMIUM" in run for run in installs)
    assert all("--no-install-recommends" in run and "rm -rf /var/lib/apt/lists" in run for run in installs)


def test_dockerfile_installs_dependencies_before_the_code() -> None:
    instructions = dockerfile()
    build = [i for i in instructions if i.stage == 0]
    copies = [n for n, i in enumerate(build) if i.name == "COPY"]
    deps = [n for n, i in enumerate(build) if i.name == "RUN" and "pip install -r" in i.args]
    code = [n for n, i in enumerate(build) if i.name == "COPY" and re.search(r"\b(bot|adapters)\b", i.args)]
    assert deps and code and deps[0] < min(code), "dependencies are installed before the code is copied"
    before = [build[n].args for n in copies if n < deps[0]]
    assert before == ["pyproject.toml ./"], before


def test_dockerignore_excludes_secrets_and_local_state_but_not_what_is_copied() -> None:
    patterns = dockerignore()
    for path in (".env", ".env.local", ".venv", ".venv/bin/python", ".git/HEAD", "data/sessions.sqlite3"):
        assert ignored(path, patterns), path
    assert ".env" in patterns and ".venv" in patterns
    for copy in (i for i in dockerfile() if i.name == "COPY" and "--from=" not in i.args):
        for source in [w for w in copy.args.split() if not w.startswith("--")][:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert not ignored(source, patterns), f"COPY {source}, but .dockerignore leaves it out"
    for path in ("bot/settings.py", "adapters/cli.py"):
        assert not ignored(path, patterns), path


# --------------------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_services_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"autogpt-bot", "redis"} <= set(services)
    bot, redis = services["autogpt-bot"], services["redis"]
    for service in (bot, redis):
        assert service["healthcheck"]["test"], service
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "PONG" in " ".join(redis["healthcheck"]["test"]) or "ping" in " ".join(
        redis["healthcheck"]["test"]
    )


def test_compose_redis_persists_with_aof_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    named = set(compose["volumes"])
    for service in ("redis", "autogpt-bot"):
        for volume in compose["services"][service]["volumes"]:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            assert source in named, f"{service}: {source} is not a named volume"
    redis_sources = {v.split(":")[0]: v.split(":")[1] for v in redis["volumes"]}
    assert "/data" in redis_sources.values()


def test_compose_bot_environment(compose: dict[str, Any]) -> None:
    bot = compose["services"]["autogpt-bot"]
    env_file = bot["env_file"]
    entries = env_file if isinstance(env_file, list) else [env_file]
    assert any(isinstance(e, dict) and e["path"] == ".env" and e.get("required") is False for e in entries)
    environment = bot["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    environment = {key: interpolate(str(value)) for key, value in environment.items()}
    check_settings(environment, "docker-compose.yml")
    url = urlsplit(environment["REDIS_URL"])
    assert url.hostname == "redis" and (url.port or 6379) == 6379
    mounts = {v.split(":")[1] for v in bot["volumes"]}
    assert environment["DATA_DIR"] in mounts
    # replicas (`--scale`) share the bot-data volume: memory in Redis (unless .env picks another
    # backend), not one local SQLite file for all
    assert environment["MEMORY_BACKEND"] == "redis"


def test_compose_runs_the_console_like_autogpt(compose: dict[str, Any]) -> None:
    """`docker compose run --rm autogpt-bot console --continuous "goal"`: the arguments replace the
    command, the entry point stays `autogpt-bot`."""
    bot = compose["services"]["autogpt-bot"]
    assert bot.get("entrypoint", ["autogpt-bot"]) == ["autogpt-bot"]
    assert bot.get("command", ["run"]) == ["run"]
    assert not bot.get("stdin_open") and not bot.get("tty")  # `compose run` gives the console a terminal
    ns = parser().parse_args(["console", "--continuous", "goal"])
    assert (ns.command, ns.continuous, ns.goals) == ("console", True, ["goal"])
    assert parser().parse_args(["console", "--gpt3only", "--continuous", "goal"]).gpt3only


def test_compose_publishes_the_ops_port(compose: dict[str, Any]) -> None:
    bot = compose["services"]["autogpt-bot"]
    container_ports = {interpolate(str(p)).rsplit(":", 1)[-1] for p in bot["ports"]}
    assert str(OPS_PORT) in container_ports


def test_compose_build_args_exist_in_the_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["autogpt-bot"]["build"]
    declared = {i.args.split("=", 1)[0] for i in dockerfile() if i.name == "ARG"}
    for arg in build.get("args", {}) if isinstance(build, dict) else {}:
        assert arg in declared, arg


# --------------------------------------------------------------------------- health check commands


class Healthz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        body = json.dumps({"status": "ok" if code == 200 else "failing"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def healthz() -> Iterator[tuple[http.server.HTTPServer, type[Healthz]]]:
    handler = type("Handler", (Healthz,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def run_check(argv: list[str], **env: str) -> int:
    assert argv[0] == "python"
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OPS_")}
    proc = subprocess.run(
        [sys.executable, *argv[1:]], env={**clean, **env}, capture_output=True, timeout=30, check=False
    )
    return proc.returncode


def compose_check_argv(compose: dict[str, Any]) -> list[str]:
    test = compose["services"]["autogpt-bot"]["healthcheck"]["test"]
    assert test[0] == "CMD", "exec form: no shell needed"
    return list(test[1:])


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_health_check_command_follows_healthz(
    source: str, compose: dict[str, Any], healthz: tuple[http.server.HTTPServer, type[Healthz]]
) -> None:
    server, handler = healthz
    argv = healthcheck_argv() if source == "Dockerfile" else compose_check_argv(compose)
    port = str(server.server_address[1])
    handler.status = 200
    assert run_check(argv, OPS_PORT=port) == 0
    assert run_check(argv, OPS_PORT=port, OPS_HOST="0.0.0.0") == 0
    handler.status = 503
    assert run_check(argv, OPS_PORT=port) != 0, "503 (store or a chat connection failing) is unhealthy"
    server.shutdown()
    server.server_close()
    assert run_check(argv, OPS_PORT=port) != 0, "no answer is unhealthy"
    assert run_check(argv, OPS_PORT="0") == 0, "OPS_PORT=0 (any port) cannot be checked from outside"


def test_dockerfile_and_compose_health_checks_agree(compose: dict[str, Any]) -> None:
    assert compose_check_argv(compose) == healthcheck_argv()


# --------------------------------------------------------------------------- Kubernetes


def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs, f"{path.name} is empty"
        out[path.name] = docs
    return out


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return k8s_documents()


def objects(manifests: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for docs in manifests.values() for d in docs if d.get("kind") == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def bot_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == "autogpt-bot"]
    return container


def config_data(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    return objects(manifests, "ConfigMap")["autogpt-bot-config"]["data"]


def test_every_manifest_parses_with_kind_and_name(manifests: dict[str, list[dict[str, Any]]]) -> None:
    assert "kustomization.yaml" in manifests
    for name, docs in manifests.items():
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], name
    kinds = {d["kind"] for docs in manifests.values() for d in docs}
    expected = {"Deployment", "StatefulSet", "Service", "ConfigMap", "Ingress", "Kustomization"}
    assert expected <= kinds


def test_kustomization_lists_the_required_parts(manifests: dict[str, list[dict[str, Any]]]) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    assert {"deployment.yaml", "configmap.yaml", "service.yaml", "redis.yaml"} <= set(resources)
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    for name in manifests:
        if name != "kustomization.yaml":
            assert name in text, f"{name} is neither a resource nor mentioned as optional"
    assert "kubectl create secret generic autogpt-bot-env --from-env-file=.env" in text
    assert [i["name"] for i in kustomization["images"]] == ["autogpt-bot"]


def test_bot_deployment_runs_several_replicas(manifests: dict[str, list[dict[str, Any]]]) -> None:
    deployment = objects(manifests, "Deployment")["autogpt-bot"]
    assert deployment["spec"]["replicas"] >= 2
    container = bot_container(deployment)
    assert container["image"] == "autogpt-bot"
    assert container.get("args", ["run"]) == ["run"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_bot_deployments_take_settings_from_the_secret_and_the_configmap(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    configmaps = objects(manifests, "ConfigMap")
    for name, deployment in objects(manifests, "Deployment").items():
        env_from = bot_container(deployment)["envFrom"]
        assert env_from[0] == {"secretRef": {"name": "autogpt-bot-env"}}, name
        assert env_from[-1]["configMapRef"]["name"] in configmaps, "the ConfigMap comes last: it wins"
        assert pod_spec(deployment)["enableServiceLinks"] is False, "Service variables could clash"


def test_k8s_settings_are_settings(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for name, configmap in objects(manifests, "ConfigMap").items():
        check_settings(configmap["data"], f"ConfigMap {name}")
    data = config_data(manifests)
    for name, deployment in objects(manifests, "Deployment").items():
        env = {e["name"]: e.get("value", "") for e in bot_container(deployment).get("env", [])}
        check_settings({**data, **env}, f"Deployment {name}")


def test_bot_probes_use_healthz_on_the_ops_port(manifests: dict[str, list[dict[str, Any]]]) -> None:
    ops_port = int(config_data(manifests).get("OPS_PORT", OPS_PORT))
    for name, deployment in objects(manifests, "Deployment").items():
        container = bot_container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/healthz", (name, probe)
            port = ports.get(get["port"], get["port"])
            assert port == ops_port, (name, probe)
        if "startupProbe" in container:
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_bot_pods_are_locked_down_with_writable_data_and_tmp(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    data_dir = config_data(manifests)["DATA_DIR"]
    for name, deployment in objects(manifests, "Deployment").items():
        spec, container = pod_spec(deployment), bot_container(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for path in (data_dir, "/tmp"):
            assert path in mounts, f"{name}: {path} must be writable"
            volume = volumes[mounts[path]]
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume


def test_only_one_process_connects_to_discord(manifests: dict[str, list[dict[str, Any]]]) -> None:
    """Every process connected with the same Discord token receives every event."""
    data = config_data(manifests)
    roles = set()
    for name, deployment in objects(manifests, "Deployment").items():
        env = {e["name"]: e.get("value") for e in bot_container(deployment).get("env", [])}
        role = env.get("ROLE", data.get("ROLE", "all"))
        roles.add(role)
        if role == "worker":  # no gateway: it posts through REST, so it keeps the token
            assert "DISCORD_BOT_TOKEN" not in env, f"{name}: workers post Discord sessions too"
            continue
        if deployment["spec"]["replicas"] > 1:
            assert env.get("DISCORD_BOT_TOKEN") == "", f"{name}: several replicas must not connect to Discord"
        elif env.get("DISCORD_BOT_TOKEN") != "":
            assert deployment["spec"]["strategy"]["type"] == "Recreate", f"{name}: never two at once"
            assert env.get("SLACK_BOT_TOKEN") == "" and env.get("SLACK_APP_TOKEN") == ""
            if role == "all":
                assert env.get("REDIS_PREFIX", data["REDIS_PREFIX"]) != data["REDIS_PREFIX"], (
                    "the Discord process keeps its sessions apart from processes that cannot post them"
                )
            else:  # an ingress: the workers post its sessions, so they share them
                assert "REDIS_PREFIX" not in env, f"{name}: the workers must see its sessions"
    assert {"all", "ingress", "worker"} <= roles


def test_workers_scale_on_the_queue(manifests: dict[str, list[dict[str, Any]]]) -> None:
    """The worker Deployment is the autoscaler's target, on the queue's metrics as /metrics names them."""
    from bot.metrics import Metrics

    exposed = Metrics().render().decode()
    (hpa,) = objects(manifests, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    deployment = objects(manifests, "Deployment")[target["name"]]
    env = {e["name"]: e.get("value") for e in bot_container(deployment).get("env", [])}
    assert env["ROLE"] == "worker"
    names = [m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    assert names and all(f"# TYPE {n} gauge" in exposed for n in names), names


def test_redis_statefulset_persists_with_aof(manifests: dict[str, list[dict[str, Any]]]) -> None:
    statefulsets = objects(manifests, "StatefulSet")
    (redis,) = statefulsets.values()
    assert redis["spec"]["replicas"] == 1
    (container,) = pod_spec(redis)["containers"]
    args = container.get("command", []) + container.get("args", [])
    assert args[args.index("--appendonly") + 1] == "yes"
    claims = {c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/data"} <= claims
    assert redis["spec"]["serviceName"] in objects(manifests, "Service")


def test_redis_url_points_at_the_redis_service(manifests: dict[str, list[dict[str, Any]]]) -> None:
    url = urlsplit(config_data(manifests)["REDIS_URL"])
    services = objects(manifests, "Service")
    assert url.hostname in services
    service = services[url.hostname]
    assert (url.port or 6379) in {p["port"] for p in service["spec"]["ports"]}
    (redis,) = objects(manifests, "StatefulSet").values()
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()


def test_services_select_pods_and_named_ports(manifests: dict[str, list[dict[str, Any]]]) -> None:
    workloads = [*objects(manifests, "Deployment").values(), *objects(manifests, "StatefulSet").values()]
    for name, service in objects(manifests, "Service").items():
        selector = service["spec"]["selector"]
        matching = [
            w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matching, f"Service {name} selects no pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in matching:
                container_ports = {
                    p.get("name"): p["containerPort"]
                    for c in pod_spec(workload)["containers"]
                    for p in c["ports"]
                }
                if isinstance(target, str) and workload["spec"]["replicas"] > 1:
                    assert target in container_ports, f"Service {name}: no port {target}"


def test_ops_service_serves_metrics_of_every_replica(manifests: dict[str, list[dict[str, Any]]]) -> None:
    service = objects(manifests, "Service")["autogpt-bot-ops"]
    ops_port = int(config_data(manifests).get("OPS_PORT", OPS_PORT))
    assert [p["port"] for p in service["spec"]["ports"]] == [ops_port]
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_slack_http_is_optional_and_reaches_the_slack_port(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    assert "slack-http.yaml" not in kustomization["resources"], "Socket Mode needs no inbound traffic"
    docs = {d["kind"]: d for d in manifests["slack-http.yaml"]}
    service, ingress = docs["Service"], docs["Ingress"]
    container = bot_container(objects(manifests, "Deployment")["autogpt-bot"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[service["spec"]["ports"][0]["targetPort"]] == SLACK_HTTP_PORT
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [p["path"] for p in paths] == ["/slack/events"]
    assert paths[0]["backend"]["service"]["name"] == service["metadata"]["name"]


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if kustomize:
        argv = [kustomize, "build", str(K8S)]
    elif kubectl:
        argv = [kubectl, "kustomize", str(K8S)]
    else:
        pytest.skip("neither kustomize nor kubectl is installed")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds.count("Deployment") == 1 and "StatefulSet" in kinds
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    assert bot_container(deployment)["image"] == "autogpt-bot:latest"


# --------------------------------------------------------------------------- .env.template


def test_every_setting_is_in_env_template() -> None:
    template = (REPO / ".env.template").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", template, re.M))
    missing = sorted(SETTING_KEYS - listed)
    assert not missing, f"missing from .env.template (python -m bot.settings --template): {missing}"


def test_every_setting_is_read_by_the_code() -> None:
    """A setting that does nothing is a defect: each field of the core's and every adapter's
    settings is used by name somewhere besides its own definition (AutoGPT's image, speech,
    GitHub, Twitter and Pinecone settings once were not)."""
    from bot.settings import Settings, settings_classes

    code = "\n".join(
        p.read_text(encoding="utf-8")
        for folder in ("bot", "adapters")
        for p in sorted((REPO / folder).rglob("*.py"))
        if p != REPO / "bot" / "settings.py"
    )
    own = (REPO / "bot" / "settings.py").read_text(encoding="utf-8")
    unread = []
    for cls in dict.fromkeys([Settings, *settings_classes()]):
        for name in cls.model_fields:
            used = re.search(rf"\b{name}\b", code) or re.search(rf"self\.{name}\b", own)
            if not used:
                unread.append(cls.env_name(name))
    assert not unread, f"settings nothing reads: {unread}"


# ---------------------------------------------------------------------------- the sandbox


def test_the_image_has_bubblewrap() -> None:
    final = final_stage(dockerfile())
    installs = [i.args for i in final if i.name == "RUN" and "bubblewrap" in i.args]
    assert installs and "$WITH_CHROMIUM" not in installs[0], "bubblewrap is always there"
    assert "--no-install-recommends" in installs[0] and "rm -rf /var/lib/apt/lists" in installs[0]


def test_compose_overrides_for_the_sandbox() -> None:
    bwrap = yaml.safe_load((REPO / "deploy" / "compose.bwrap.yml").read_text())["services"]["autogpt-bot"]
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= set(
        bwrap["security_opt"]
    )
    check_settings(bwrap["environment"], "deploy/compose.bwrap.yml")
    assert bwrap["environment"]["SANDBOX"] == "bwrap"

    docker = yaml.safe_load(interpolate((REPO / "deploy" / "compose.docker.yml").read_text()))
    bot = docker["services"]["autogpt-bot"]
    env = {k: v for k, v in bot["environment"].items() if k != "DOCKER_HOST"}  # the SDK's, not ours
    check_settings(env, "deploy/compose.docker.yml")
    assert env["SANDBOX"] == "docker" and env["SANDBOX_DOCKER_DATA_DIR"].endswith("/data")
    assert "/var/run/docker.sock:/var/run/docker.sock" in bot["volumes"]
    assert "./data:/data" in bot["volumes"]  # the engine mounts workspaces from the host
    for name in ("compose.bwrap.yml", "compose.docker.yml"):
        assert name in (REPO / "deploy" / "sandbox.md").read_text()
