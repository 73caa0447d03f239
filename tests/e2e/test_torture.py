"""The torture suite: two operator replicas with leader election, the leader SIGKILLed
at random moments, a leader paused (SIGSTOP) long enough to lose its Lease and then
resumed, and the control plane stopped and started, while CloningOperations (with
rivals on the same source, and cancels) and CloneObjects (with rivals for the same
destination) run. Then it checks that nothing was lost, duplicated or left behind.

    make torture                 # the full run (CLONE_OPERATOR_TORTURE=full)
    make test                    # includes the short run (a few minutes)

Everything is observed from outside, as a user would: the test's own watches (every
phase an operation reaches, when each target became ready), the objects left in the
namespace, an SMTP server, and the API server's audit log (who wrote what, when).
It prints its figures; the asserts are the issue's "done when".
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from clone_operator.builders.provenance import CLONE_OBJECT_UID, OPERATION_UID
from tests.cluster import localcluster
from tests.e2e import manifests
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    E2E_RELEASE_NAMESPACE,
    Replica,
    free_port,
    stop_all,
)
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.mail import SMTP_ENV, SmtpServer
from tests.e2e.manifests import clone_object, statefulset

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive]

GROUP, VERSION = "cloning.dev", "v1alpha1"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
LEASE_NAME = DEFAULT_OPERATOR_ENV["CLONE_OPERATOR_LEADER_ELECTION_LEASE"]
MAX_IN_PROGRESS = 8
FAILOVER_LIMIT_S = 15.0
READY_TO_DONE_LIMIT_S = 10.0
OUTAGE_MARGIN_S = 2.0  # after an outage ends, events still in flight settle


@dataclass(frozen=True)
class Scale:
    sources: int  # one operation each
    rivals: int  # a second operation on the same source, created together with the first
    cancels: int  # a third one on the same source, canceled at once
    cluster_objects: int  # CloneObjects of StatefulSets
    config_pairs: int  # two CloneObjects of a ConfigMap racing for one destination
    kills: int  # SIGKILLs of the leader
    pauses: int  # SIGSTOP of the leader past its Lease, then SIGCONT
    restarts: int  # control plane stopped and started

    @property
    def operations(self) -> int:
        return self.sources + self.rivals + self.cancels

    @property
    def clone_objects(self) -> int:
        return self.cluster_objects + 2 * self.config_pairs


SCALES = {
    "short": Scale(
        sources=10,
        rivals=3,
        cancels=3,
        cluster_objects=3,
        config_pairs=2,
        kills=3,
        pauses=1,
        restarts=1,
    ),
    "full": Scale(
        sources=80,
        rivals=15,
        cancels=10,
        cluster_objects=10,
        config_pairs=6,
        kills=20,
        pauses=2,
        restarts=2,
    ),
}


# --- what the test sees: its own watches --------------------------------------------------------


@dataclass
class Seen:
    """Everything the test's watches saw, with wall-clock times (this machine's clock,
    the one the API server's audit log uses)."""

    phases: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    """operation or clone object name → phase/state → when first seen."""
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    """operation name → its latest body."""
    ready: dict[str, float] = field(default_factory=dict)
    """StatefulSet name → when first seen with every replica ready."""
    violations: list[str] = field(default_factory=list)
    max_in_progress: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def operation(self, body: dict[str, Any], deleted: bool) -> None:
        name, now = body["metadata"]["name"], time.time()
        status = body.get("status") or {}
        with self.lock:
            if deleted:
                self.current.pop(name, None)
                return
            self.current[name] = body
            if status.get("phase"):
                self.phases[name].setdefault(status["phase"], now)
            active: Counter[str] = Counter()
            in_progress = 0
            for op in self.current.values():
                phase = (op.get("status") or {}).get("phase")
                if phase in ("Pending", "InProgress"):
                    active[op["spec"]["sourceCluster"]] += 1
                in_progress += phase == "InProgress"
            self.max_in_progress = max(self.max_in_progress, in_progress)
            for source, n in active.items():
                if n > 1:
                    self.violations.append(f"{n} active operations for {source} at once")
            if in_progress > MAX_IN_PROGRESS:
                self.violations.append(f"{in_progress} operations InProgress at once")

    def clone_object(self, body: dict[str, Any], deleted: bool) -> None:
        state = (body.get("status") or {}).get("state")
        if state and not deleted:
            with self.lock:
                self.phases[body["metadata"]["name"]].setdefault(state, time.time())

    def statefulset(self, body: dict[str, Any], deleted: bool) -> None:
        spec, st, meta = body.get("spec") or {}, body.get("status") or {}, body["metadata"]
        replicas = int(spec.get("replicas", 1))
        if (
            not deleted
            and replicas > 0
            and int(st.get("readyReplicas") or 0) >= replicas
            and st.get("observedGeneration") == meta.get("generation")
        ):
            with self.lock:
                self.ready.setdefault(meta["name"], time.time())


def follow(
    stop: threading.Event, lister: Callable[..., Any], on: Callable[[dict[str, Any], bool], None]
) -> None:
    """List, then watch from the list's resourceVersion; on any error (the control
    plane restarting) list again. Runs until `stop`."""
    while not stop.is_set():
        try:
            listed = lister(_preload_content=False)
            data = json.loads(listed.data)
            for item in data["items"]:
                on(item, False)
            w = watch.Watch()
            for event in w.stream(
                lister, resource_version=data["metadata"]["resourceVersion"], timeout_seconds=30
            ):
                obj = event["raw_object"]
                if event["type"] == "ERROR":
                    break  # 410 Gone: list again
                on(obj, event["type"] == "DELETED")
                if stop.is_set():
                    w.stop()
        except Exception:  # the API server is down or restarting: try again
            time.sleep(0.5)


@contextlib.contextmanager
def watching(api: client.ApiClient, namespace: str) -> Iterator[Seen]:
    seen = Seen()
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    stop = threading.Event()
    feeds = [
        (functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                           "cloningoperations"), seen.operation),
        (functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                           "cloneobjects"), seen.clone_object),
        (functools.partial(apps.list_namespaced_stateful_set, namespace), seen.statefulset),
    ]  # fmt: skip
    threads = [
        threading.Thread(target=follow, args=(stop, lister, on), daemon=True)
        for lister, on in feeds
    ]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()


# --- the replicas -------------------------------------------------------------------------------


def acting(replica: Replica) -> bool:
    """Leads and acts: its last word on leadership is a take-over, and it is not paused."""
    if not replica.running():
        return False
    text = replica.log()
    return text.rfind("took over as leader") > text.rfind("stopped leading")


def identity(replica: Replica) -> str:
    """The replica's name in the Lease and in its requests' User-Agent."""
    found = re.search(r"leader election on Lease \S+ as (\S+)\)", replica.log())
    assert found, f"no identity in {replica.log_path}"
    return found.group(1)


def the_leader(replicas: list[Replica], timeout: float = 60) -> Replica:
    return wait_for(
        "a replica to act", lambda: next((r for r in replicas if acting(r)), None), timeout=timeout
    )


@dataclass
class Disruptions:
    """What was done to the operator and the cluster, and when (wall clock)."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    """Outages: from a disruption until a leader acts again."""
    failovers: list[float] = field(default_factory=list)
    pauses: list[tuple[str, float]] = field(default_factory=list)
    """(identity of the paused leader, when it was paused)."""
    restarts: list[float] = field(default_factory=list)
    """Control plane stopped → a leader acting again, seconds."""

    def outage(self, start: float, end: float) -> None:
        self.windows.append((start, end + OUTAGE_MARGIN_S))

    def during_outage(self, start: float, end: float) -> bool:
        return any(start <= w_end and end >= w_start for w_start, w_end in self.windows)


def kill_leader(replicas: list[Replica], done: Disruptions) -> None:
    """SIGKILL the acting leader; time until the other acts; start the killed one again."""
    leader = the_leader(replicas)
    [other] = [r for r in replicas if r is not leader]
    killed = time.time()
    leader.kill()
    wait_for("the other replica to take over", lambda: acting(other), timeout=60)
    done.failovers.append(time.time() - killed)
    done.outage(killed, time.time())
    leader.launch()  # a new process (a new identity): it stands by


def pause_leader(replicas: list[Replica], done: Disruptions) -> None:
    """SIGSTOP the leader (partitioned: alive, silent) until the other has taken over and
    worked a while, then SIGCONT: it must step down and never write again."""
    leader = the_leader(replicas)
    [other] = [r for r in replicas if r is not leader]
    assert leader.proc is not None
    paused = time.time()
    done.pauses.append((identity(leader), paused))
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for("the other replica to take over", lambda: acting(other), timeout=60)
        done.outage(paused, time.time())
        time.sleep(random.uniform(1.0, 4.0))
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    wait_for("the resumed replica to step down", lambda: not acting(leader), timeout=30)


def restart_control_plane(replicas: list[Replica], done: Disruptions) -> None:
    """Stop every component and start them again on the same state (what `make cluster`
    does for a stopped cluster); time until a leader acts again."""
    p = localcluster.paths()
    offsets = {r.name: len(r.log()) for r in replicas}
    stopped = time.time()
    assert localcluster.restart(p, (p.workdir / "kwokctl.yaml").read_text())
    localcluster.up()  # the provisioner, the nodes Ready

    def acting_again() -> bool:
        # A take-over after the restart, or a leader that never had to step down.
        return any(
            acting(r) and ("took over" in r.log()[offsets[r.name]:]
                           or "stopped leading" not in r.log()[offsets[r.name]:])
            for r in replicas
        )  # fmt: skip

    wait_for("a leader to act after the restart", acting_again, timeout=120)
    done.restarts.append(time.time() - stopped)
    done.outage(stopped, time.time())


# --- the workload -------------------------------------------------------------------------------


def operation(name: str, source: str, cancel: bool = False) -> dict[str, Any]:
    """An operation that notifies its own address, labelled as the torture suite's."""
    spec: dict[str, Any] = {"notificationEmailAddresses": [f"{name}@torture.example"]}
    body = manifests.operation(name, source, **spec, **({"cancel": True} if cancel else {}))
    body["metadata"]["labels"] = {"torture": "1"}
    return body


def waves(scale: Scale, rounds: int) -> list[list[list[dict[str, Any]]]]:
    """The workload in `rounds` waves; each wave a list of batches applied in one call
    (an operation and its rivals go together, so they race for the lock)."""
    batches: list[list[dict[str, Any]]] = []
    for i in range(scale.sources):
        batch = [operation(f"op-{i}", f"src-{i}")]
        if i < scale.rivals:
            batch.append(operation(f"rival-{i}", f"src-{i}"))
        if scale.rivals <= i < scale.rivals + scale.cancels:
            batch.append(operation(f"cancel-{i}", f"src-{i}", cancel=True))
        batches.append(batch)
    for i in range(scale.cluster_objects):
        batches.append([clone_object(f"clo-sts-{i}", "StatefulSet", f"csrc-{i}")])
    for i in range(scale.config_pairs):
        batches.append(
            [clone_object(f"clo-cm-{i}-{side}", "ConfigMap", "settings", name=f"settings-{i}")
             for side in ("a", "b")]
        )  # fmt: skip
    random.shuffle(batches)
    return [batches[r::rounds] for r in range(rounds)]


def sources(scale: Scale) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
         "data": {"mode": "torture"}},
    ]  # fmt: skip
    for name in [f"src-{i}" for i in range(scale.sources)] + [
        f"csrc-{i}" for i in range(scale.cluster_objects)
    ]:
        objects += statefulset(name, replicas=1)
    return objects


def terminal(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    return bool(status.get("finalized")) and (
        status.get("phase") in ("Succeeded", "Failed", "Canceled")
        or status.get("state") in ("Created", "Failed")
    )


# --- the API server's audit log -----------------------------------------------------------------


def audit_events(p: localcluster.Paths) -> list[dict[str, Any]]:
    path = localcluster.audit_log(p)
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def received(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()


def writes_after_losing_the_lease(
    events: list[dict[str, Any]], paused: str, since: float
) -> tuple[float, list[str]]:
    """When another replica took the Lease after `since`, and every write request the
    paused replica sent after that, until it took the Lease back itself (its own Lease
    requests and the LeadershipLost Event on it, unfenced by design, aside). Refused
    requests count too: nothing may even be attempted."""
    ours = f"({paused})"

    def election(e: dict[str, Any]) -> bool:
        ref = e.get("objectRef") or {}
        return ref.get("namespace") == E2E_RELEASE_NAMESPACE and ref.get("resource") in (
            "leases",
            "events",
        )

    taken = min(
        received(e)
        for e in events
        if e["verb"] in WRITES
        and received(e) > since
        and (e.get("objectRef") or {}).get("name") == LEASE_NAME
        and "clone-operator/" in e.get("userAgent", "")
        and ours not in e.get("userAgent", "")
    )
    # It may lead again later, legitimately: once it has taken the Lease back itself.
    back = min(
        (
            received(e)
            for e in events
            if e["verb"] in WRITES
            and received(e) > taken
            and (e.get("objectRef") or {}).get("name") == LEASE_NAME
            and ours in e.get("userAgent", "")
            and 200 <= int(e["responseStatus"].get("code", 0)) < 300
        ),
        default=float("inf"),
    )
    late = [
        f"{e['verb']} {e['requestURI']} at {e['requestReceivedTimestamp']} "
        f"({e['responseStatus'].get('code')})"
        for e in events
        if ours in e.get("userAgent", "")
        and e["verb"] in WRITES
        and taken <= received(e) < back
        and not election(e)
    ]
    return taken, late


# --- the test -----------------------------------------------------------------------------------


@pytest.fixture
def torture_replicas(operator_process: Any, operator_kubeconfig: Path) -> Iterator[list[Replica]]:
    """Two replicas with the chart's ServiceAccount, SMTP settings and a low InProgress
    limit; the session's operator steps aside."""
    operator_process.stop()
    run = uuid.uuid4().hex[:6]
    smtp_settings = {k: v for k, v in SMTP_ENV.items() if "SMTP" in k}
    pair = [Replica(operator_kubeconfig, f"torture-{side}-{run}", free_port()) for side in "ab"]
    for replica in pair:
        replica.env.update(
            smtp_settings,
            CLONE_OPERATOR_MAX_IN_PROGRESS=str(MAX_IN_PROGRESS),
            # Every operation is in one namespace: the whole limit is its share.
            CLONE_OPERATOR_MAX_IN_PROGRESS_PER_NAMESPACE=str(MAX_IN_PROGRESS),
        )
        replica.launch()
    yield pair
    stop_all(pair)


def test_torture(
    torture_replicas: list[Replica], kubectl: Kubectl, cluster: localcluster.Paths
) -> None:
    scale = SCALES[os.environ.get("CLONE_OPERATOR_TORTURE", "short")]
    namespace = str(kubectl.namespace)
    replicas = torture_replicas
    started = time.monotonic()

    kubectl.apply(sources(scale))
    n_sources = scale.sources + scale.cluster_objects
    wait_for(
        f"{n_sources} sources ready",
        lambda: (
            sum(
                (s.get("status") or {}).get("readyReplicas") == 1
                for s in kubectl.items("statefulsets")
            )
            >= n_sources
        ),
        timeout=300,
    )
    smtp = SmtpServer(int(SMTP_ENV["CLONE_OPERATOR_SMTP_PORT"]))
    smtp.start()
    api = config.new_client_from_config(str(cluster.kubeconfig))
    done = Disruptions()
    plan = ["kill"] * scale.kills + ["pause"] * scale.pauses + ["restart"] * scale.restarts
    random.shuffle(plan)
    try:
        with watching(api, namespace) as seen:
            the_leader(replicas)
            for wave, disruption in zip(waves(scale, len(plan)), plan, strict=True):
                for batch in wave:
                    kubectl.apply(batch)
                    for obj in batch:
                        if obj["metadata"]["name"].startswith("cancel-"):
                            kubectl("patch", "cloningoperation", obj["metadata"]["name"],
                                    "--type=merge", "-p", '{"spec":{"cancel":true}}',
                                    check=False)  # fmt: skip
                time.sleep(random.uniform(0.2, 3.0))  # a random moment of the work
                {"kill": kill_leader, "pause": pause_leader, "restart": restart_control_plane}[
                    disruption
                ](replicas, done)
            chaos = time.monotonic() - started

            def everything_finished() -> bool:
                found = kubectl.items("cloningoperations") + kubectl.items("cloneobjects")
                return len(found) == scale.operations + scale.clone_objects and all(
                    terminal(o) for o in found
                )

            wait_for("every resource terminal and finalized", everything_finished, timeout=600)
            time.sleep(1.0)  # the watches catch up
        operations = {o["metadata"]["name"]: o for o in kubectl.items("cloningoperations")}
        objects = {o["metadata"]["name"]: o for o in kubectl.items("cloneobjects")}
        mail = smtp.mailbox.all()
    finally:
        smtp.stop()
        api.close()
    total = time.monotonic() - started
    audit = audit_events(cluster)

    # --- figures ---
    phases = Counter(o["status"]["phase"] for o in operations.values())
    states = Counter(o["status"]["state"] for o in objects.values())
    delays, excluded = ready_to_done(seen, operations, objects, done)
    emails = Counter(address for recipients, _ in mail for address in recipients)
    print(f"\ntorture ({os.environ.get('CLONE_OPERATOR_TORTURE', 'short')}): "
          f"{len(operations)} CloningOperations {dict(phases)}, "
          f"{len(objects)} CloneObjects {dict(states)}")  # fmt: skip
    print(f"  disruptions: {scale.kills} leader SIGKILLs, {scale.pauses} paused leaders, "
          f"{scale.restarts} control-plane restarts; chaos {chaos:.0f} s, total {total:.0f} s, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  failover (leader SIGKILLed → other acting): median "
          f"{statistics.median(done.failovers):.1f} s, max {max(done.failovers):.1f} s")  # fmt: skip
    if done.restarts:
        print(f"  control plane stopped → a leader acting: "
              f"{', '.join(f'{s:.1f} s' for s in done.restarts)}")  # fmt: skip
    if delays:
        print(f"  target ready → Succeeded/Created outside outages: median "
              f"{statistics.median(delays):.2f} s, max {max(delays):.2f} s "
              f"({len(delays)} measured, {excluded} overlapping an outage)")  # fmt: skip
    print(f"  max InProgress at once: {seen.max_in_progress} (limit {MAX_IN_PROGRESS}); "
          f"emails: {sum(emails.values())} to {len(emails)} addresses")  # fmt: skip
    refused = sum(r.metric("clone_operator_writes_refused_total").get("", 0) for r in replicas)

    # --- every resource terminal and finalized ---
    assert len(operations) == scale.operations
    assert len(objects) == scale.clone_objects
    assert all(terminal(o) for o in [*operations.values(), *objects.values()])
    assert not seen.violations, seen.violations[:5]

    # --- exactly one success per source ---
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for op in operations.values():
        by_source[op["spec"]["sourceCluster"]].append(op)
    for source, ops in by_source.items():
        outcomes = sorted(o["status"]["phase"] for o in ops)
        successes = outcomes.count("Succeeded")
        if any(o["metadata"]["name"].startswith("cancel-") for o in ops):
            # The canceled one may have won the lock and been canceled while Pending.
            assert successes == 1 or "Canceled" in outcomes, (source, outcomes)
            assert successes <= 1, (source, outcomes)
        else:
            assert successes == 1, (source, outcomes)
        for op in ops:
            if op["status"]["phase"] == "Failed":
                assert op["status"]["reason"] == "AnotherOperationActive", op["status"]

    # --- no duplicate, orphaned or not handed-over object; no lock left ---
    check_objects(kubectl, operations, objects)
    locks = [x["metadata"]["name"] for x in kubectl.items("leases")]
    assert not [n for n in locks if n.startswith("cloning-lock-")], locks

    # --- each address exactly one email ---
    for name, op in operations.items():
        address = f"{name}@torture.example"
        [entry] = [e for e in op["status"]["notifications"] if e["address"] == address]
        if entry["state"] == "Sent":
            assert emails[address] == 1, (address, emails[address], entry)
        else:  # Unconfirmed: the operator died mid-transfer; never a duplicate
            assert entry["state"] == "Unconfirmed", entry
            assert emails[address] <= 1, (address, emails[address], entry)

    # --- delays, failover ---
    assert delays, "no ready → Succeeded delay measured outside the outages"
    assert max(delays) <= READY_TO_DONE_LIMIT_S, sorted(delays)[-5:]
    assert max(done.failovers) <= FAILOVER_LIMIT_S, done.failovers

    # --- a resumed partitioned leader never wrote after losing its Lease ---
    for paused, since in done.pauses:
        taken, late = writes_after_losing_the_lease(audit, paused, since)
        print(f"  paused leader {paused}: Lease taken over {taken - since:.1f} s after the "
              f"SIGSTOP; its writes after that: {len(late)}")  # fmt: skip
        assert not late, late[:5]
    print(f"  writes refused by the replicas' fences: {refused:.0f}")


def ready_to_done(
    seen: Seen,
    operations: dict[str, dict[str, Any]],
    objects: dict[str, dict[str, Any]],
    done: Disruptions,
) -> tuple[list[float], int]:
    """Seconds from a target seen ready to its owner seen Succeeded/Created, for the
    clones whose interval overlaps no outage; and how many did overlap one."""
    pairs = [
        (o["status"].get("targetCluster"), seen.phases[name].get("Succeeded"))
        for name, o in operations.items()
        if o["status"]["phase"] == "Succeeded"
    ] + [
        ((o["status"].get("destination") or {}).get("name"), seen.phases[name].get("Created"))
        for name, o in objects.items()
        if o["status"]["state"] == "Created" and o["spec"]["source"]["kind"] == "StatefulSet"
    ]
    delays, excluded = [], 0
    for target, finished in pairs:
        ready = seen.ready.get(target or "")
        if ready is None or finished is None or done.during_outage(ready - 1.0, finished):
            excluded += 1
            continue
        delays.append(max(0.0, finished - ready))
    return delays, excluded


def check_objects(
    kubectl: Kubectl, operations: dict[str, dict[str, Any]], objects: dict[str, dict[str, Any]]
) -> None:
    """What each success made exists once and is handed over; nothing else is left."""
    succeeded = {o["metadata"]["uid"]: o for o in operations.values()
                 if o["status"]["phase"] == "Succeeded"}  # fmt: skip
    created = {o["metadata"]["uid"]: o for o in objects.values()
               if o["status"]["state"] == "Created"}  # fmt: skip
    made: dict[str, Counter[str]] = defaultdict(Counter)
    for kind in ("statefulsets", "services", "persistentvolumeclaims", "configmaps"):
        for obj in kubectl.items(kind):
            labels = obj["metadata"].get("labels") or {}
            owner = labels.get(OPERATION_UID) or labels.get(CLONE_OBJECT_UID)
            if owner is None:
                continue
            name = f"{kind}/{obj['metadata']['name']}"
            assert owner in succeeded or owner in created, f"orphan: {name} of {owner}"
            assert not obj["metadata"].get("ownerReferences"), f"not handed over: {name}"
            made[owner][kind] += 1
    for uid, op in succeeded.items():
        assert made[uid] == {"statefulsets": 1, "services": 1, "persistentvolumeclaims": 1}, (
            op["metadata"]["name"], made[uid])  # fmt: skip
        sts = kubectl.get("statefulset", op["status"]["targetCluster"])
        assert sts["metadata"]["labels"][OPERATION_UID] == uid
    for uid, obj in created.items():
        destination = obj["status"]["destination"]
        found = kubectl.get(destination["kind"].lower(), destination["name"])
        assert found["metadata"]["uid"] == destination["uid"], obj["metadata"]["name"]
        expected = (
            {"statefulsets": 1, "services": 1, "persistentvolumeclaims": 1}
            if destination["kind"] == "StatefulSet"
            else {"configmaps": 1}
        )
        assert made[uid] == expected, (obj["metadata"]["name"], made[uid])
    # Of two CloneObjects racing for one destination, exactly one made it.
    for name, obj in objects.items():
        if name.endswith("-a"):
            rival = objects[name[:-1] + "b"]
            assert sorted([obj["status"]["state"], rival["status"]["state"]]) == [
                "Created",
                "Failed",
            ], name
