"""Validate a Compose file without running it (no Docker engine needed).

    python scripts/check_compose.py docker-compose.yml [--api-service api] [--docker auto]

CI runs this on a fresh machine without a container engine, so the rules of the Compose
specification that matter to this project are checked here, by reading the YAML:

* the file parses as YAML 1.2 (as Compose reads it: ``9595:9595`` is a string, not a
  sexagesimal number; ``yes`` is a string) with no duplicate keys, and ``${VAR}``
  interpolation is well-formed (values from the environment and a ``.env`` beside the file);
* only known top-level and service keys (or ``x-`` extensions), valid service names;
* every service has ``image`` or ``build``; a local build context and its Dockerfile exist;
* every ``depends_on`` target exists, there is no cycle, and a target with a healthcheck is
  waited for with ``condition: service_healthy``; ``service_healthy`` on a target without a
  healthcheck in this file is refused (an image's own HEALTHCHECK cannot be seen from here);
* healthchecks: ``test`` starts with CMD, CMD-SHELL or NONE, durations are Go durations;
* ports are well-formed (short and long syntax), in range, and no host port is published twice;
* named volumes and networks used by a service are declared at the top level;
* the API service (``--api-service``) sets POSTGRES_DSN, MILVUS_URI and REDIS_URL with the
  schemes the service accepts, depends on the services those addresses name, every service it
  depends on has a healthcheck, and its own healthcheck calls ``/healthz``.

When a Compose v2 client is here (``docker compose``, or a standalone ``docker-compose`` v2; no
engine needed), ``docker compose config -q`` is run as well; ``--docker never`` skips it,
``--docker require`` fails without it. Exit status: 0 when
the file is valid, 1 with one line per problem, 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

TOP_LEVEL_KEYS = {
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include",
    "models",
}  # fmt: skip
# The service properties of the Compose specification (schema/compose-spec.json).
SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging",
    "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models",
    "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
    "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "provider",
    "pull_policy", "pull_refresh_after", "read_only", "restart", "runtime", "scale", "secrets",
    "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
    "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts",
    "volumes", "volumes_from", "working_dir",
}  # fmt: skip
HEALTHCHECK_KEYS = {
    "disable", "interval", "retries", "test", "timeout", "start_period", "start_interval",
}  # fmt: skip
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
MOUNT_TYPES = {"bind", "volume", "tmpfs", "cluster", "npipe", "image"}
VOLUME_MODES = {
    "ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated",
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
}  # fmt: skip
NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
PORT_PART = re.compile(r"^(\d+)(?:-(\d+))?$")
RESTART = re.compile(r"^(?:no|always|unless-stopped|on-failure(?::\d+)?)$")
IMAGE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
# What the API needs, and the URL schemes its settings accept.
API_ENV = {
    "POSTGRES_DSN": ("postgresql", "postgres", "postgresql+psycopg"),
    "MILVUS_URI": ("http", "https", "tcp", "grpc"),
    "REDIS_URL": ("redis", "rediss"),
}


class Report:
    """Problems found, each tied to where it is in the file."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


# -- YAML as Compose reads it -------------------------------------------------------------------
class ComposeLoader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 core-schema scalars that refuses duplicate keys."""


# YAML 1.1 scalars that YAML 1.2 (and so Compose) reads as strings: yes/no/on/off, 1:30,
# 2024-01-01. They are dropped and the 1.2 core-schema forms added back.
_REPLACED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    assert isinstance(node, yaml.MappingNode)
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


ComposeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
ComposeLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


# -- interpolation ------------------------------------------------------------------------------
class InterpolationError(ValueError):
    """A ``${...}`` expression Compose would refuse."""


class Interpolator:
    """Compose's ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``..."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.unset: set[str] = set()

    def substitute(self, text: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char != "$":
                out.append(char)
                i += 1
                continue
            following = text[i + 1 : i + 2]
            if following == "$":
                out.append("$")
                i += 2
            elif following == "{":
                depth, j = 1, i + 2
                while j < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                if depth:
                    raise InterpolationError(f"unclosed '${{' in {text!r}")
                out.append(self._expand(text[i + 2 : j - 1]))
                i = j
            elif match := VAR_NAME.match(text, i + 1):
                out.append(self._value(match.group()) or "")
                i = match.end()
            else:
                raise InterpolationError(f"invalid '$' in {text!r} (write $$ for a literal $)")
        return "".join(out)

    def _value(self, name: str) -> str | None:
        if name not in self.env:
            self.unset.add(name)
            return None
        return self.env[name]

    def _expand(self, expr: str) -> str:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expr, re.S)
        if match is None:
            raise InterpolationError(f"invalid interpolation '${{{expr}}}'")
        name, op, arg = match.groups()
        present = name in self.env
        value = self.env.get(name)
        filled = bool(value)
        if op is None:
            return self._value(name) or ""
        if op in (":-", "-"):
            use_default = not filled if op == ":-" else not present
            return self.substitute(arg) if use_default else (value or "")
        if op in (":?", "?"):
            if not filled if op == ":?" else not present:
                raise InterpolationError(f"{name} is required: {self.substitute(arg) or 'unset'}")
            return value or ""
        use_alternative = filled if op == ":+" else present
        return self.substitute(arg) if use_alternative else ""

    def walk(self, node: Any, where: str, report: Report) -> Any:
        """Interpolate every string value (not keys) of ``node``."""
        if isinstance(node, dict):
            return {
                k: self.walk(v, f"{where}.{k}" if where else str(k), report)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [self.walk(v, f"{where}[{i}]", report) for i, v in enumerate(node)]
        if isinstance(node, str):
            try:
                return self.substitute(node)
            except InterpolationError as exc:
                report.error(where, str(exc))
        return node


def read_env(directory: Path) -> dict[str, str]:
    """The environment Compose interpolates with: ``.env`` beside the file, then os.environ."""
    env: dict[str, str] = {}
    dotenv = directory / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.removeprefix("export ").split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    env.update(os.environ)
    return env


# -- checks -------------------------------------------------------------------------------------
def healthcheck_test(service: dict[str, Any]) -> list[str] | None:
    """The service's healthcheck command, or None when it has none (or it is disabled)."""
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable") in (True, "true"):
        return None
    test = check.get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    if isinstance(test, list) and test and test[0] != "NONE":
        return [str(t) for t in test]
    return None


def check_healthcheck(where: str, check: Any, report: Report) -> None:
    if not isinstance(check, dict):
        report.error(where, "must be a mapping")
        return
    for key in check:
        if key not in HEALTHCHECK_KEYS and not str(key).startswith("x-"):
            report.error(f"{where}.{key}", "unknown healthcheck key")
    test = check.get("test")
    if isinstance(test, list):
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            report.error(f"{where}.test", "a list must start with CMD, CMD-SHELL or NONE")
        elif test[0] != "NONE" and len(test) < 2:
            report.error(f"{where}.test", f"{test[0]} needs a command after it")
        elif not all(isinstance(t, str) for t in test):
            report.error(f"{where}.test", "every item must be a string")
    elif not isinstance(test, str) and not check.get("disable"):
        report.error(f"{where}.test", "required: a string or a list")
    for key in ("interval", "timeout", "start_period", "start_interval"):
        value = check.get(key)
        if value is not None and not (isinstance(value, str) and DURATION.match(value)):
            report.error(f"{where}.{key}", f"{value!r} is not a duration such as 10s or 1m30s")
    retries = check.get("retries")
    if retries is not None and not (isinstance(retries, int) and retries >= 0):
        report.error(f"{where}.retries", f"{retries!r} is not a non-negative integer")


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``depends_on`` in long form; the short list form means ``service_started``."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): {"condition": "service_started"} for name in raw}
    if isinstance(raw, dict):
        return {str(k): (v if isinstance(v, dict) else {}) for k, v in raw.items()}
    return {}


def check_depends_on(name: str, services: dict[str, Any], report: Report) -> None:
    raw = services[name].get("depends_on")
    if raw is None:
        return
    where = f"services.{name}.depends_on"
    if not isinstance(raw, list | dict):
        report.error(where, "must be a list of service names or a mapping")
        return
    for target, spec in depends_on(services[name]).items():
        at = f"{where}.{target}"
        if target == name:
            report.error(at, "a service cannot depend on itself")
            continue
        if target not in services:
            report.error(at, f"no service named {target!r}")
            continue
        if isinstance(raw, dict) and not isinstance(raw[target], dict):
            report.error(at, "must be a mapping with a condition")
            continue
        condition = spec.get("condition")
        if condition not in CONDITIONS:
            report.error(at, f"condition {condition!r} is not one of {sorted(CONDITIONS)}")
            continue
        target_check = healthcheck_test(services[target])
        if target_check is not None and condition == "service_started":
            report.error(
                at,
                f"{target!r} has a healthcheck: wait for it with condition: service_healthy "
                "(a list entry means service_started)",
            )
        if target_check is None and condition == "service_healthy":
            report.error(at, f"condition service_healthy, but {target!r} defines no healthcheck")


def find_cycle(services: dict[str, Any]) -> list[str] | None:
    """A dependency cycle as a list of names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in depends_on(services[name]):
            if target not in services or target == name:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in services:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def _port_range(text: str) -> tuple[int, int] | None:
    match = PORT_PART.match(text)
    if match is None:
        return None
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if not 1 <= start <= end <= 65535:
        return None
    return start, end


def parse_port(entry: Any) -> tuple[str, tuple[int, int] | None, tuple[int, int], str]:
    """``(host_ip, published range or None, target range, protocol)``; raises ValueError."""
    if isinstance(entry, bool):
        raise ValueError("not a port")
    if isinstance(entry, int):
        if not 1 <= entry <= 65535:
            raise ValueError(f"{entry} is out of range 1-65535")
        return "", None, (entry, entry), "tcp"
    if isinstance(entry, dict):
        target = _port_range(str(entry.get("target", "")))
        if target is None or target[0] != target[1]:
            raise ValueError(f"target {entry.get('target')!r} is not a port")
        published = entry.get("published")
        host = _port_range(str(published)) if published not in (None, "", 0, "0") else None
        if published not in (None, "", 0, "0") and host is None:
            raise ValueError(f"published {published!r} is not a port or range")
        if entry.get("mode", "ingress") not in ("host", "ingress"):
            raise ValueError(f"mode {entry.get('mode')!r} is not host or ingress")
        host_ip = str(entry.get("host_ip", ""))
        protocol = str(entry.get("protocol", "tcp"))
    elif isinstance(entry, str):
        spec, _, protocol = entry.partition("/")
        protocol = protocol or "tcp"
        host_ip = ""
        if spec.startswith("["):
            host_ip, sep, spec = spec[1:].partition("]:")
            if not sep:
                raise ValueError("an IPv6 host address is written [addr]:host:container")
            parts = spec.split(":")
            if len(parts) != 2:
                raise ValueError("expected [addr]:host:container")
        else:
            parts = spec.split(":")
            if len(parts) == 3:
                host_ip = parts.pop(0)
            elif len(parts) > 3:
                raise ValueError("expected [[host_ip:]host:]container[/protocol]")
        target = _port_range(parts[-1])
        if target is None:
            raise ValueError(f"container port {parts[-1]!r} is not a port or range 1-65535")
        host = None
        # An empty host port, or 0, lets the engine pick a free one.
        if len(parts) == 2 and parts[0] not in ("", "0"):
            host = _port_range(parts[0])
            if host is None:
                raise ValueError(f"host port {parts[0]!r} is not a port or range 1-65535")
    else:
        raise ValueError("must be a number, a string or a mapping")
    if protocol not in ("tcp", "udp", "sctp"):
        raise ValueError(f"protocol {protocol!r} is not tcp, udp or sctp")
    if host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise ValueError(f"host address {host_ip!r} is not an IP address") from None
    if host is not None and target[1] != target[0] and host[1] - host[0] != target[1] - target[0]:
        raise ValueError("host and container port ranges differ in length")
    return host_ip, host, target, protocol


def check_ports(services: dict[str, Any], report: Report) -> None:
    published: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for name, service in services.items():
        ports = service.get("ports")
        if ports is None:
            continue
        if not isinstance(ports, list):
            report.error(f"services.{name}.ports", "must be a list")
            continue
        for i, entry in enumerate(ports):
            where = f"services.{name}.ports[{i}]"
            try:
                host_ip, host, _target, protocol = parse_port(entry)
            except ValueError as exc:
                report.error(where, f"{entry!r}: {exc}")
                continue
            if host is None:
                continue
            ip = "" if host_ip in ("0.0.0.0", "::") else host_ip
            for port in range(host[0], host[1] + 1):
                for other_where, other_ip in published.get((port, protocol), []):
                    if not ip or not other_ip or ip == other_ip:
                        report.error(where, f"host port {port} is also published by {other_where}")
                published.setdefault((port, protocol), []).append((where, ip))


def named_volume(entry: Any) -> str | None:
    """The named volume a service volume entry uses, or None (bind mount, tmpfs, anonymous)."""
    if isinstance(entry, dict):
        if entry.get("type") == "volume" and entry.get("source"):
            return str(entry["source"])
        return None
    parts = str(entry).split(":")
    if len(parts) < 2:
        return None
    source = parts[0]
    if source.startswith((".", "/", "~")) or re.match(r"^[A-Za-z]$", source):
        return None
    return source


def check_volumes(name: str, service: dict[str, Any], declared: set[str], report: Report) -> None:
    volumes = service.get("volumes")
    if volumes is None:
        return
    if not isinstance(volumes, list):
        report.error(f"services.{name}.volumes", "must be a list")
        return
    for i, entry in enumerate(volumes):
        where = f"services.{name}.volumes[{i}]"
        if isinstance(entry, dict):
            if entry.get("type") not in MOUNT_TYPES:
                report.error(
                    where, f"type {entry.get('type')!r} is not one of {sorted(MOUNT_TYPES)}"
                )
            if not str(entry.get("target", "")).startswith("/"):
                report.error(where, "target must be an absolute path in the container")
        elif isinstance(entry, str):
            parts = entry.split(":")
            target = parts[1] if len(parts) > 1 else parts[0]
            if not target.startswith("/"):
                report.error(where, f"{entry!r}: the container path must be absolute")
            if len(parts) > 3:
                report.error(where, f"{entry!r}: expected source:target[:mode]")
            elif len(parts) == 3 and not set(parts[2].split(",")) <= VOLUME_MODES:
                report.error(where, f"{entry!r}: unknown mode {parts[2]!r}")
        else:
            report.error(where, "must be a string or a mapping")
            continue
        volume = named_volume(entry)
        if volume is not None and volume not in declared:
            report.error(where, f"named volume {volume!r} is not declared under top-level volumes")


def environment(service: dict[str, Any], where: str, report: Report) -> dict[str, str | None]:
    """The service's environment as a mapping; problems with its form are reported."""
    raw = service.get("environment")
    env: dict[str, str | None] = {}
    if raw is None:
        return env
    if isinstance(raw, dict):
        for key, value in raw.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                report.error(f"{where}.{key}", "must be a string, number, boolean or null")
            env[str(key)] = None if value is None else str(value)
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                report.error(f"{where}[{i}]", "must be a KEY=VALUE string")
                continue
            key, sep, value = item.partition("=")
            if key in env:
                report.error(f"{where}[{i}]", f"{key} is set twice")
            env[key] = value if sep else None
    else:
        report.error(where, "must be a mapping or a list of KEY=VALUE strings")
    return env


def check_build(name: str, service: dict[str, Any], base: Path, report: Report) -> None:
    build = service["build"]
    where = f"services.{name}.build"
    if isinstance(build, str):
        context, dockerfile, inline = build, "Dockerfile", False
    elif isinstance(build, dict):
        context = str(build.get("context", "."))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
        inline = "dockerfile_inline" in build
    else:
        report.error(where, "must be a path or a mapping")
        return
    if re.match(r"^[a-z][a-z0-9+.-]*://|^git@", context):
        return  # a remote context (URL or git) cannot be checked from here
    directory = (base / context).resolve()
    if not directory.is_dir():
        report.error(where, f"build context {context!r} is not a directory ({directory})")
    elif not inline and not (directory / dockerfile).is_file():
        report.error(where, f"no {dockerfile} in the build context {directory}")


def check_service(
    name: str, services: dict[str, Any], top: dict[str, Any], base: Path, report: Report
) -> None:
    service = services[name]
    where = f"services.{name}"
    if not NAME.match(name):
        report.error(where, "a service name may hold only letters, digits, '.', '_' and '-'")
    if not isinstance(service, dict):
        report.error(where, "must be a mapping")
        return
    for key in service:
        if key not in SERVICE_KEYS and not str(key).startswith("x-"):
            report.error(f"{where}.{key}", "not a Compose service key")
    if "image" not in service and "build" not in service:
        report.error(where, "needs an image or a build")
    image = service.get("image")
    if image is not None and not (isinstance(image, str) and IMAGE.match(image)):
        report.error(f"{where}.image", f"{image!r} is not an image reference")
    if "build" in service:
        check_build(name, service, base, report)
    if "healthcheck" in service:
        check_healthcheck(f"{where}.healthcheck", service["healthcheck"], report)
    restart = service.get("restart")
    if restart is not None and not (isinstance(restart, str) and RESTART.match(restart)):
        report.error(
            f"{where}.restart", f"{restart!r} is not no, always, on-failure[:N] or unless-stopped"
        )
    check_depends_on(name, services, report)
    check_volumes(name, service, set(top.get("volumes") or {}), report)
    networks = service.get("networks") or []
    declared_networks = set(top.get("networks") or {}) | {"default"}
    for network in networks if isinstance(networks, list | dict) else []:
        if network not in declared_networks:
            report.error(f"{where}.networks", f"network {network!r} is not declared")
    environment(service, f"{where}.environment", report)


def check_api(api: str, services: dict[str, Any], report: Report) -> None:
    """The rules this project adds for its API service."""
    where = f"services.{api}"
    service = services.get(api)
    if not isinstance(service, dict):
        report.error(where, "the API service is missing (see --api-service)")
        return
    env = environment(service, f"{where}.environment", Report())
    needed = depends_on(service)
    for variable, schemes in API_ENV.items():
        value = env.get(variable)
        if not value:
            report.error(f"{where}.environment", f"{variable} must be set")
            continue
        url = urlsplit(value)
        if url.scheme not in schemes:
            report.error(
                f"{where}.environment.{variable}",
                f"scheme {url.scheme!r} is not one of {', '.join(schemes)}",
            )
        host = url.hostname or ""
        if host not in services:
            report.error(
                f"{where}.environment.{variable}", f"host {host!r} is not a service in this file"
            )
        elif host not in needed:
            report.error(f"{where}.depends_on", f"{variable} names {host!r}: depend on it")
    for target in needed:
        if target in services and healthcheck_test(services[target]) is None:
            report.error(
                f"services.{target}",
                f"{api!r} depends on it, so it needs a healthcheck (service_healthy)",
            )
    test = healthcheck_test(service)
    if test is None:
        report.error(f"{where}.healthcheck", "required: the API's healthcheck calls /healthz")
    elif not any("/healthz" in part for part in test):
        report.error(f"{where}.healthcheck.test", "should call /healthz")


def check_document(doc: Any, base: Path, api: str, report: Report) -> None:
    """Every rule above, on the interpolated document."""
    if not isinstance(doc, dict):
        report.error("(top)", "the file must be a mapping")
        return
    for key in doc:
        if key not in TOP_LEVEL_KEYS and not str(key).startswith("x-"):
            report.error(str(key), "not a Compose top-level key")
    if "version" in doc:
        report.warn("version", "obsolete in the Compose specification; Compose ignores it")
    for key in ("include",):
        if key in doc:
            report.warn(key, "included files are not checked")
    for key in ("volumes", "networks", "configs", "secrets"):
        section = doc.get(key)
        if section is not None and not isinstance(section, dict):
            report.error(key, "must be a mapping")
            doc[key] = {}
        for item in section or {}:
            if not NAME.match(str(item)):
                report.error(f"{key}.{item}", "invalid name")
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        report.error("services", "required: a non-empty mapping of services")
        return
    for name in services:
        check_service(str(name), services, doc, base, report)
    if cycle := find_cycle(services):
        report.error("depends_on", f"dependency cycle: {' -> '.join(cycle)}")
    check_ports(services, report)
    used = {
        volume
        for service in services.values()
        if isinstance(service, dict) and isinstance(service.get("volumes"), list)
        for volume in map(named_volume, service["volumes"])
        if volume
    }
    for volume in set(doc.get("volumes") or {}) - used:
        report.warn(f"volumes.{volume}", "declared but no service uses it")
    check_api(api, services, report)


def compose_command() -> list[str] | None:
    """A Compose v2 client: the ``docker compose`` plugin, else a standalone ``docker-compose``
    v2 binary (Compose v1 predates the specification and is not used)."""
    candidates = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        try:
            probe = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = probe.stdout.strip().lstrip("v").split(".")[0]
        if probe.returncode == 0 and major.isdigit() and int(major) >= 2:
            return command
    return None


def docker_compose(path: Path, mode: str, report: Report) -> str:
    """Run ``docker compose config -q`` when a Compose client is here; returns what happened."""
    if mode == "never":
        return "docker compose config: skipped (--docker never)"
    command = compose_command()
    if command is None:
        if mode == "require":
            report.error("docker compose", "no Compose v2 client here (--docker require)")
        return "docker compose config: skipped (no Compose v2 client here)"
    shown = " ".join([Path(command[0]).name, *command[1:]])
    try:
        result = subprocess.run(
            [*command, "-f", str(path), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=path.parent,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.error(f"{shown} config", str(exc))
        return f"{shown} config: failed to run"
    if result.returncode != 0:
        for line in (result.stderr or result.stdout).strip().splitlines():
            report.error(f"{shown} config", line)
        return f"{shown} config: failed"
    return f"{shown} config -q: OK"


def iter_lines(report: Report) -> Iterator[str]:
    yield from (f"ERROR {e}" for e in report.errors)
    yield from (f"warning {w}" for w in report.warnings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default="docker-compose.yml", type=Path)
    parser.add_argument("--api-service", default="api", help="the SomaFractalMemory service")
    parser.add_argument(
        "--docker",
        choices=("auto", "never", "require"),
        default="auto",
        help="also run `docker compose config -q`: when available (auto), never, or require it",
    )
    args = parser.parse_args(argv)
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    report = Report()
    try:
        raw = yaml.load(text, Loader=ComposeLoader)  # a SafeLoader subclass: no arbitrary tags
    except yaml.YAMLError as exc:
        print(f"{path}: ERROR not valid YAML: {exc}", file=sys.stderr)
        return 1
    interpolator = Interpolator(read_env(path.resolve().parent))
    doc = interpolator.walk(raw, "", report) if isinstance(raw, dict) else raw
    for name in sorted(interpolator.unset):
        report.warn(f"${name}", "not set; Compose would use an empty string")
    check_document(doc, path.resolve().parent, args.api_service, report)
    engine = docker_compose(path.resolve(), args.docker, report)
    for line in iter_lines(report):
        print(f"{path}: {line}", file=sys.stderr)
    services = len(doc.get("services") or {}) if isinstance(doc, dict) else 0
    if report.errors:
        print(f"{path}: {len(report.errors)} problem(s); {engine}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({services} services, {len(report.warnings)} warning(s)); {engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
