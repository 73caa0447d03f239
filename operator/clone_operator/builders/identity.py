"""A clone's own identity: references to the source's pods and Service, rewritten. Pure.

A clustered server finds its peers by DNS name, in an argument, an environment
variable or a config file: `search-0.search.prod.svc.cluster.local:8107:8108,…`.
A clone that kept those names would join its source's cluster. `Rename`
rewrites the names that denote the source into the target's, and `findings`
(the guard) reports what still denotes the source afterwards.

What is rewritten (`<sts>` the source StatefulSet, `<svc>` its governing
Service, `<ns>` the namespace, `<domain>` the cluster domain; any letter case,
as DNS ignores it):

- a pod's DNS name, `<sts>-<ordinal>.<svc>`, with any of the suffixes `.<ns>`,
  `.<ns>.svc`, `.<ns>.svc.<domain>` (and a trailing root dot);
- a pod's bare name `<sts>-<ordinal>` (a peer's member name, as etcd's
  `--initial-cluster=search-0=http://…` has it; its hostname);
- the Service's DNS name `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<domain>`.

A name is only taken whole: it must not continue a longer name on either side
(`xsearch-0.search`, `search-engine`, `search-0.search.other-ns.svc`,
`a.search.prod.svc` are left alone). The Service's *bare* name (`search`) is not
rewritten: it is an ordinary word too (a role, a path, a container name) and
cannot be told apart from one; a server given its peers' Service by bare name
needs `targetOverrides`.

The guard (`findings`) is wider than the rewrite, on purpose: after the rewrite
it reports any name still inside the source Service's DNS zone
(`<anything>.<svc>.<ns>`, e.g. `_peer._tcp.search.prod.svc` or
`search-$(i).search.prod.svc`), any pod name built from a template
(`search-$(i).search`, `search-{0..2}.search`, `search-%d.search`), and any
name the rewrite knows that sits where the rewrite does not go (a probe's
`httpGet.host`, `hostAliases`, an annotation). A clone with one left is not
made.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

DEFAULT_CLUSTER_DOMAIN = "cluster.local"

# Characters that continue a DNS name (or an identifier) around a match.
_NAME = r"A-Za-z0-9_\-"
_BEFORE = rf"(?<![{_NAME}.])"
# Not followed by a name character, nor by a dot that starts another label.
_AFTER = rf"(?![{_NAME}])(?!\.[{_NAME}])"


@dataclass(frozen=True)
class Identity:
    """The DNS identity of a cluster: its StatefulSet, governing Service and namespace."""

    statefulset: str
    service: str
    namespace: str
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


def _suffixes(identity: Identity) -> str:
    """`(.<ns>(.svc(.<domain>)?)?)?(.)?` as a regex: the optional qualifications."""
    ns, domain = re.escape(identity.namespace), re.escape(identity.cluster_domain)
    return rf"(?P<qualified>\.{ns}(?:\.svc(?:\.{domain})?)?)?\.?"


@dataclass(frozen=True)
class Rename:
    """Rewrites references to `source` into `target` (same namespace and domain)."""

    source: Identity
    target: Identity

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """What the rewrite replaces (see the module docstring)."""
        sts, svc = re.escape(self.source.statefulset), re.escape(self.source.service)
        return re.compile(
            rf"{_BEFORE}(?:"
            rf"{sts}-(?P<ordinal>[0-9]+)(?:\.{svc}{_suffixes(self.source)})?"
            rf"|(?P<service>{svc})\.(?P<ns>{re.escape(self.source.namespace)})"
            rf"(?P<rest>(?:\.svc(?:\.{re.escape(self.source.cluster_domain)})?)?\.?)"
            rf"){_AFTER}",
            re.IGNORECASE,
        )

    def _replacement(self, match: re.Match[str]) -> str:
        if match.group("ordinal") is not None:
            text = match.group(0)
            pod = f"{self.target.statefulset}-{match.group('ordinal')}"
            head_len = len(self.source.statefulset) + 1 + len(match.group("ordinal"))
            tail = text[head_len:]
            if not tail:
                return pod
            # `.<svc>` + whatever qualification followed, kept as written.
            return f"{pod}.{self.target.service}{tail[1 + len(self.source.service) :]}"
        return f"{self.target.service}.{match.group('ns')}{match.group('rest')}"

    def text(self, value: str) -> str:
        """`value` with every reference to the source rewritten."""
        return self.pattern.sub(self._replacement, value)

    def base64(self, value: str) -> str:
        """A base64 value (Secret data, ConfigMap binaryData) rewritten when it is UTF-8
        text; binary content is returned as it is (the guard still scans it)."""
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return value
        rewritten = self.text(decoded)
        if rewritten == decoded:
            return value
        return base64.b64encode(rewritten.encode("utf-8")).decode("ascii")


# Where in a container the rewrite goes: commands, arguments, environment values.
_EXEC_HOLDERS = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")


def _rewrite_list(values: list[Any] | None, fn: Callable[[str], str]) -> list[Any] | None:
    if values is None:
        return None
    return [fn(v) if isinstance(v, str) else v for v in values]


def rewrite_container(container: dict[str, Any], rename: Rename) -> dict[str, Any]:
    """A container with its command, args, env values and exec hooks/probes rewritten.
    (The input is not changed.)"""
    out = dict(container)
    for key in ("command", "args"):
        if key in out:
            out[key] = _rewrite_list(out[key], rename.text)
    if "env" in out:
        out["env"] = [
            {**e, "value": rename.text(e["value"])} if isinstance(e.get("value"), str) else e
            for e in out["env"] or []
        ]
    for probe in _EXEC_HOLDERS:
        command = ((out.get(probe) or {}).get("exec") or {}).get("command")
        if command is not None:
            out[probe] = {
                **out[probe],
                "exec": {**out[probe]["exec"], "command": _rewrite_list(command, rename.text)},
            }
    lifecycle = out.get("lifecycle")
    if lifecycle:
        hooks = dict(lifecycle)
        for hook in _HOOKS:
            command = ((hooks.get(hook) or {}).get("exec") or {}).get("command")
            if command is not None:
                hooks[hook] = {
                    **hooks[hook],
                    "exec": {**hooks[hook]["exec"], "command": _rewrite_list(command, rename.text)},
                }
        out["lifecycle"] = hooks
    return out


def rewrite_pod_spec(pod_spec: dict[str, Any], rename: Rename) -> dict[str, Any]:
    """The pod spec with every container's and init container's references rewritten,
    and its DNS search domains (a search domain inside the source's Service zone
    makes `search-0` resolve to the source's pod)."""
    out = dict(pod_spec)
    for key in ("initContainers", "containers"):
        if out.get(key):
            out[key] = [rewrite_container(c, rename) for c in out[key]]
    searches = (out.get("dnsConfig") or {}).get("searches")
    if searches:
        out["dnsConfig"] = {**out["dnsConfig"], "searches": _rewrite_list(searches, rename.text)}
    return out


def rewrite_data(obj: dict[str, Any], rename: Rename) -> dict[str, Any]:
    """A ConfigMap or Secret with its values rewritten: `data` of a ConfigMap is text;
    a Secret's `data` and a ConfigMap's `binaryData` are base64, rewritten when they
    decode to UTF-8 text."""
    out = dict(obj)
    text_data = obj.get("kind") == "ConfigMap"
    if obj.get("data"):
        fn = rename.text if text_data else rename.base64
        out["data"] = {k: fn(v) for k, v in obj["data"].items()}
    if obj.get("binaryData"):
        out["binaryData"] = {k: rename.base64(v) for k, v in obj["binaryData"].items()}
    return out


# ---- the guard ---------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A reference to the source left in a built object."""

    kind: str
    name: str
    path: str
    """The field path, e.g. `spec.template.spec.containers[0].args[2]`."""
    text: str | None
    """What was found; None when it must not be shown (a Secret's content)."""

    def __str__(self) -> str:
        what = f": {self.text!r}" if self.text is not None else ""
        return f"{self.kind} {self.name} {self.path}{what}"


def _guard_pattern(rename: Rename) -> re.Pattern[str]:
    source = rename.source
    sts, svc = re.escape(source.statefulset), re.escape(source.service)
    ns, domain = re.escape(source.namespace), re.escape(source.cluster_domain)
    qualified = rf"(?:\.svc(?:\.{domain})?)?\.?{_AFTER}"
    word = r"[^\s,;'\"=/@]"
    zone = rf"{word}*\.{svc}\.{ns}{qualified}"  # <anything>.<svc>.<ns>
    templated = rf"{_BEFORE}{sts}-[^A-Za-z0-9\s,;'\"=/@]{word}*?\.{svc}(?:\.{ns})?{qualified}"
    return re.compile(rf"{rename.pattern.pattern}|{zone}|{templated}", re.IGNORECASE)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = f".{k}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)) else f"[{k}]"
            yield from _strings(v, f"{path}{key}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _decoded(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except binascii.Error:
        return value


def findings(objects: list[dict[str, Any]], rename: Rename) -> list[Finding]:
    """Every reference to the source left in the built StatefulSet's pod template and in
    the copied ConfigMaps and Secrets (the PVCs name their source volumes on purpose)."""
    pattern = _guard_pattern(rename)
    found: list[Finding] = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        scanned: Iterator[tuple[str, str]]
        if kind == "StatefulSet":
            scanned = _strings(obj["spec"].get("template"), "spec.template")
        elif kind == "ConfigMap":
            scanned = iter(
                [
                    *_strings(obj.get("data") or {}, "data"),
                    *(
                        (p, _decoded(v))
                        for p, v in _strings(obj.get("binaryData") or {}, "binaryData")
                    ),
                ]
            )
        elif kind == "Secret":
            scanned = ((p, _decoded(v)) for p, v in _strings(obj.get("data") or {}, "data"))
        else:
            continue
        for path, value in scanned:
            match = pattern.search(value)
            if match is not None:
                shown = None if kind == "Secret" else match.group(0)
                found.append(Finding(kind, name, path, shown))
    return found
