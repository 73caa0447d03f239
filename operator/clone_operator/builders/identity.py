"""A clone's own identity: references to the source's pods and Service, rewritten. Pure.

A clustered server finds its peers by DNS name, in an argument, an environment
variable or a config file: `search-0.search.prod.svc.cluster.local:8107:8108,…`.
A clone that kept those names would join its source's cluster. `Rename`
rewrites the names that denote the source into the target's, and `findings`
(the guard) reports what still denotes the source afterwards.

What is rewritten (`<sts>` the source StatefulSet, `<svc>` its governing
Service, `<ns>` the namespace, `<domain>` the cluster domain, `<q>` any of the
qualifications `.<ns>`, `.<ns>.svc`, `.<ns>.svc.<domain>`; a trailing root dot
is kept; any letter case, as DNS ignores it):

- a pod's DNS name, `<sts>-<ordinal>.<svc>` with or without `<q>`;
- a pod's bare name `<sts>-<ordinal>` (a peer's member name, as etcd's
  `--initial-cluster=search-0=http://…` has it; its hostname);
- the Service's DNS name `<svc><q>`;
- a name a pod builds from its own variable, `$(VAR).<svc><q>` or
  `${VAR}.<svc><q>` with a namespace (Kafka's advertised listeners,
  Elasticsearch's publish host: `$(POD_NAME).search.prod.svc.cluster.local`):
  in the clone the variable is the clone pod's own, so only the Service changes;
- an SRV name in the Service's zone, `_<service>._<proto>.<svc><q>`.

A name is only taken whole: it must not continue a longer name on either side
(`xsearch-0.search`, `search-engine`, `search-0.search.other-ns.svc`). The
Service's *bare* name (`search`) is not rewritten: it is an ordinary word too (a
role, a path, a container name) and cannot be told apart from one; a server given
its peers' Service by bare name needs `targetOverrides`.

The guard (`findings`) is wider than the rewrite, on purpose. After the rewrite it
reports any other name inside the source Service's zone (`api.search.prod.svc`:
maybe a pod of *another* StatefulSet behind the same Service, which must not be
renamed), any pod name built from a template (`search-$(i).search`,
`search-{0..2}.search`, `search-%d.search`), and any name the rewrite knows that
sits where the rewrite does not go (a probe's `httpGet.host`, `hostAliases`).
It never looks at what the operator itself writes (keys under `cloning.dev/`).

Both run in time linear in their input, without backtracking (`Rename.references`):
the source's names are found with plain substring search, each name-like token
holding one is taken whole, once, and parsed by splitting it on dots. A megabyte of
text costs milliseconds, not minutes (`make bench-guard`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from clone_operator.api.common import LABEL_PREFIX

DEFAULT_CLUSTER_DOMAIN = "cluster.local"

# What a name-like token is made of: DNS name characters, dots, and what templates and
# variable references add around them. Anything else (space, `:`, `,`, `=`, `/`, `@`,
# quotes, any non-ASCII character) ends a token.
_TOKEN_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.$(){}%[]*"
_FOLD = bytes(
    (c if c in _TOKEN_BYTES else ord(" ")) if not 65 <= c <= 90 else c + 32 for c in range(256)
)
"""A byte table: ASCII letters to lower case, token characters kept, the rest a space."""
_TEMPLATE_CHARS = re.compile(r"[$(){}%\[\]*]+")
_VARIABLE = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)|\$\{[A-Za-z_][A-Za-z0-9_]*\}")
MAX_NAMES = 1000
"""Name-like tokens holding the source's name that one value may hold (a nodes list of
a thousand peers holds a thousand)."""
_SRV_LABEL = re.compile(r"_[A-Za-z0-9][A-Za-z0-9\-]*")


@dataclass(frozen=True)
class Identity:
    """The DNS identity of a cluster: its StatefulSet, governing Service and namespace."""

    statefulset: str
    service: str
    namespace: str
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


class Form(StrEnum):
    """What a reference to the source is; the first four are rewritten."""

    POD = "a pod of the source"
    SERVICE = "the source's Service"
    POD_BY_VARIABLE = "a pod's own name in the source's Service zone"
    SRV = "an SRV name in the source's Service zone"
    TEMPLATED = "a pod name built from a template: the rewrite cannot know which pods it names"
    OTHER_IN_ZONE = (
        "a name in the source Service's zone that is not one of the source's pods (maybe a "
        "pod of another StatefulSet behind the same Service): renaming it could silently "
        "break the clone"
    )
    TOO_MANY = (
        "more names like the source's than any configuration holds: refused rather than "
        "scanned without bound"
    )

    @property
    def rewritten(self) -> bool:
        return self not in (Form.TEMPLATED, Form.OTHER_IN_ZONE, Form.TOO_MANY)


@dataclass(frozen=True)
class Reference:
    """A name in a text that denotes the source; `replacement` when it is rewritten."""

    start: int
    end: int
    form: Form
    replacement: str | None


def _ordinal_of(label: str, statefulset: str) -> str | None:
    """`3` for the label `<statefulset>-3` (any case); None for anything else."""
    head = len(statefulset) + 1
    if len(label) > head and label[:head].lower() == f"{statefulset}-":
        ordinal = label[head:]
        if ordinal.isascii() and ordinal.isdigit():
            return ordinal
    return None


@dataclass(frozen=True)
class Rename:
    """Rewrites references to `source` into `target` (same namespace and domain)."""

    source: Identity
    target: Identity

    @cached_property
    def _anchors(self) -> tuple[bytes, ...]:
        """Lower-case text every reference contains: `<sts>-`, `<svc>.<ns>`, or a variable
        before the Service's bare name (`).<svc>`, `}.<svc>`)."""
        sts, svc, ns = (
            name.lower().encode()
            for name in (self.source.statefulset, self.source.service, self.source.namespace)
        )
        return sts + b"-", svc + b"." + ns, b")." + svc, b"}." + svc

    @cached_property
    def _qualifications(self) -> tuple[tuple[str, ...], ...]:
        """The label lists that may follow `<svc>`: `<ns>`, `<ns>.svc`, `<ns>.svc.<domain>`."""
        ns = self.source.namespace.lower()
        domain = tuple(self.source.cluster_domain.lower().split("."))
        return ((ns,), (ns, "svc"), (ns, "svc", *domain))

    @cached_property
    def _longest(self) -> int:
        """How many labels `<svc><q>` may span at most."""
        return 1 + max(len(q) for q in self._qualifications)

    def references(self, text: str) -> Iterator[Reference]:
        """Every reference to the source in `text`, in order.

        The text is folded to bytes (lower case, every character that cannot be part of
        a name a space), the anchors are found with `bytes.find` and each token holding
        one is taken whole, once: linear, and at C speed where nothing matches. Past
        `MAX_NAMES` such tokens the rest of the text is one `TOO_MANY` reference: the
        work per value is bounded, whatever it holds."""
        folded = text.encode("ascii", "replace").translate(_FOLD)
        found = [folded.find(anchor) for anchor in self._anchors]
        parsed: dict[str, list[tuple[int, int, Form, str | None]]] = {}
        position = taken = 0
        while hits := [at for at in found if at >= 0]:
            hit = min(hits)
            start = folded.rfind(b" ", position, hit) + 1 or position
            taken += 1
            if taken > MAX_NAMES:
                yield Reference(start, len(text), Form.TOO_MANY, None)
                return
            end = folded.find(b" ", hit)
            end = len(folded) if end < 0 else end
            token = text[start:end]
            if token not in parsed:
                parsed[token] = list(self._in_token(token))
            for at, until, form, replacement in parsed[token]:
                yield Reference(start + at, start + until, form, replacement)
            position = end
            found = [
                at if at < 0 or at >= position else folded.find(anchor, position)
                for at, anchor in zip(found, self._anchors, strict=True)
            ]

    def _in_token(self, token: str) -> Iterator[tuple[int, int, Form, str | None]]:
        """The references in one token, at their offsets in it."""
        if _TEMPLATE_CHARS.search(token) is None:
            plain = self._plain(token)
            if plain is not None:
                yield 0, len(token), *plain
            return
        whole = self._whole(token)
        if whole is not None:
            yield 0, len(token), *whole
            return
        # A name inside template syntax, e.g. `(search-0.search)`: each plain part alone.
        start = 0
        for separator in [*_TEMPLATE_CHARS.finditer(token), None]:
            end = separator.start() if separator is not None else len(token)
            plain = self._plain(token[start:end]) if end > start else None
            if plain is not None:
                yield start, end, *plain
            if separator is not None:
                start = separator.end()

    def _zone(self, labels: list[str]) -> int | None:
        """Where `<svc><q>` starts in `labels` when the name ends with it (else None)."""
        service = self.source.service.lower()
        ending = labels[:-1] if len(labels) > 1 and labels[-1] == "" else labels
        lowered = [label.lower() for label in ending[-self._longest :]]
        for qualification in self._qualifications:
            at = len(lowered) - len(qualification) - 1
            if at >= 0 and lowered[at] == service and tuple(lowered[at + 1 :]) == qualification:
                return len(ending) - len(lowered) + at
        return None

    def _whole(self, token: str) -> tuple[Form, str | None] | None:
        """A token that is one name in the Service's zone, or a templated pod name."""
        labels = token.split(".")
        at = self._zone(labels)
        statefulset = self.source.statefulset.lower()
        templated = (
            token[: len(statefulset) + 1].lower() == f"{statefulset}-"
            and len(token) > len(statefulset) + 1
            and not token[len(statefulset) + 1].isalnum()
        )
        if at is None:
            bare = labels[:-1] if len(labels) > 2 and labels[-1] == "" else labels
            if len(bare) < 2 or bare[-1].lower() != self.source.service.lower():
                return None
            if templated:
                return Form.TEMPLATED, None
            if len(bare) == 2 and _VARIABLE.fullmatch(bare[0]):  # `$(POD_NAME).<svc>`
                return Form.POD_BY_VARIABLE, ".".join([bare[0], self.target.service, *labels[2:]])
            return None
        prefix = labels[:at]
        renamed = ".".join([*prefix, self.target.service, *labels[at + 1 :]])
        if not prefix:
            return Form.SERVICE, renamed
        if len(prefix) == 1:
            ordinal = _ordinal_of(prefix[0], self.source.statefulset)
            if ordinal is not None:
                pod = f"{self.target.statefulset}-{ordinal}"
                return Form.POD, ".".join([pod, self.target.service, *labels[at + 1 :]])
            if _VARIABLE.fullmatch(prefix[0]):
                return Form.POD_BY_VARIABLE, renamed
        if all(_SRV_LABEL.fullmatch(label) for label in prefix):
            return Form.SRV, renamed
        if templated:
            return Form.TEMPLATED, None
        return Form.OTHER_IN_ZONE, None

    def _plain(self, name: str) -> tuple[Form, str | None] | None:
        """A plain DNS name (no template syntax): a pod, `pod.<svc>`, or in the zone."""
        whole = self._whole(name)
        if whole is not None:
            return whole
        labels = name.split(".")
        if len(labels) > 1 and labels[-1] == "":
            labels = labels[:-1]  # a trailing root dot, kept as written
        ordinal = _ordinal_of(labels[0], self.source.statefulset)
        if ordinal is None or len(labels) > 2:
            return None
        pod = f"{self.target.statefulset}-{ordinal}"
        if len(labels) == 1:
            return Form.POD, pod + name[len(labels[0]) :]
        if labels[1].lower() == self.source.service.lower():
            rest = name[len(labels[0]) + 1 + len(labels[1]) :]
            return Form.POD, f"{pod}.{self.target.service}{rest}"
        return None

    def text(self, value: str) -> str:
        """`value` with every reference to the source rewritten."""
        pieces, last = [], 0
        for ref in self.references(value):
            if ref.replacement is not None:
                pieces += [value[last : ref.start], ref.replacement]
                last = ref.end
        if not pieces:
            return value
        pieces.append(value[last:])
        return "".join(pieces)

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


def _with_exec(holder: dict[str, Any], rename: Rename) -> dict[str, Any]:
    """A probe or hook with its exec command rewritten (others as they are)."""
    command = (holder.get("exec") or {}).get("command")
    if command is None:
        return holder
    return {**holder, "exec": {**holder["exec"], "command": _rewrite_list(command, rename.text)}}


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
        if out.get(probe):
            out[probe] = _with_exec(out[probe], rename)
    lifecycle = out.get("lifecycle")
    if lifecycle:
        out["lifecycle"] = {
            **lifecycle,
            **{hook: _with_exec(lifecycle[hook], rename) for hook in _HOOKS if lifecycle.get(hook)},
        }
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


# ---- the guard and the audit -------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A reference to the source left in a built object."""

    kind: str
    name: str
    path: str
    """The field path, e.g. `spec.template.spec.containers[0].args[2]`."""
    text: str | None
    """What was found; None when it must not be shown (a Secret's content)."""
    form: Form = Form.OTHER_IN_ZONE

    @property
    def why(self) -> str:
        """Why it is refused, for the user."""
        if self.form.rewritten:
            return f"{self.form.value}, where the rewrite does not go"
        return str(self.form.value)

    def __str__(self) -> str:
        what = f": {self.text!r}" if self.text is not None else ""
        return f"{self.kind} {self.name} {self.path}{what} ({self.why})"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in `value` with its field path, except the values of keys under
    `cloning.dev/` (labels, annotations and selectors the operator writes itself)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            if key.startswith(LABEL_PREFIX):
                continue
            yield from _strings(
                v, f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{key}]"
            )
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _decoded(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except binascii.Error:
        return value


def scanned(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """What of a built object came from the source and is scanned, as (path, text): a
    StatefulSet's pod template, the values of a ConfigMap or Secret (base64 decoded).
    (The PVCs name their source volumes on purpose.)"""
    kind = obj["kind"]
    if kind == "StatefulSet":
        yield from _strings(obj["spec"].get("template"), "spec.template")
    elif kind == "ConfigMap":
        yield from _strings(obj.get("data") or {}, "data")
        yield from (
            (p, _decoded(v)) for p, v in _strings(obj.get("binaryData") or {}, "binaryData")
        )
    elif kind == "Secret":
        yield from ((p, _decoded(v)) for p, v in _strings(obj.get("data") or {}, "data"))


MAX_SHOWN = 120


def _clipped(text: str) -> str:
    """What a message shows of a finding: a name is short; a huge token is cut."""
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN // 2]}…{text[-MAX_SHOWN // 2 :]}"


def findings(objects: list[dict[str, Any]], rename: Rename) -> list[Finding]:
    """Every reference to the source left in the built StatefulSet's pod template and in
    the copied ConfigMaps and Secrets."""
    found: list[Finding] = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        for path, value in scanned(obj):
            ref = next(rename.references(value), None)
            if ref is not None:
                shown = None if kind == "Secret" else _clipped(value[ref.start : ref.end])
                found.append(Finding(kind, name, path, shown, ref.form))
    return found


@dataclass(frozen=True)
class Rewrite:
    """One value the rewrite changed, for the user's audit (an Event)."""

    kind: str
    name: str
    path: str
    before: str | None
    """None for a Secret: its content is never shown."""
    after: str | None

    def __str__(self) -> str:
        if self.before is None:
            return f"{self.kind} {self.name} {self.path} (content not shown)"
        before, after = _clipped(self.before), _clipped(self.after or "")
        return f"{self.kind} {self.name} {self.path}: {before!r} → {after!r}"


def rewrites(
    kind: str, name: str, source: Any, built: Any, rename: Rename, path: str
) -> list[Rewrite]:
    """The values at the same path in `source` and `built` that the rewrite changed."""
    before = dict(_strings(source, path))
    out = []
    for at, after in _strings(built, path):
        old = before.get(at)
        if old is None or old == after or after not in (rename.text(old), rename.base64(old)):
            continue  # new, unchanged, or changed by something else (a repointed config)
        shown = kind != "Secret"
        out.append(Rewrite(kind, name, at, old if shown else None, after if shown else None))
    return out


def audit(rewritten: list[Rewrite], length: int, most: int) -> list[str]:
    """Messages (each at most `length` characters, at most `most` of them) that list what
    the rewrite changed, for the Events a user audits it by."""
    messages: list[str] = []
    current = f"rewrote {len(rewritten)} references to the source: "
    for told, rewrite in enumerate(rewritten):
        line = f"{rewrite}; "
        if len(current) + len(line) > length and not current.endswith(": "):
            if len(messages) == most - 1:
                messages.append(f"{current}(and {len(rewritten) - told} more)"[:length])
                return messages
            messages.append(current.rstrip("; "))
            current = "(rewrote, continued): "
        current += line[: length - len(current)]
    if rewritten:
        messages.append(current.rstrip("; "))
    return messages
