"""Two replicas, one leader: failover after a SIGKILL, and a paused leader that never
writes again once its Lease is gone (the partitioned-leader case)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.clones import source_cluster, wait_finalized, wait_phase
from tests.e2e.harness import (
    DEFAULT_OPERATOR_ENV,
    E2E_RELEASE_NAMESPACE,
    Replica,
)
from tests.e2e.kube import Kubectl, wait_for
from tests.e2e.manifests import operation

pytestmark = pytest.mark.e2e


def leader_of(replicas: list[Replica]) -> Replica:
    return wait_for("a replica to lead", lambda: next((r for r in replicas if r.leads()), None))


def lease_holder(admin: Kubectl) -> str:
    lease = DEFAULT_OPERATOR_ENV["CLONE_OPERATOR_LEADER_ELECTION_LEASE"]
    body = admin.in_namespace(E2E_RELEASE_NAMESPACE).get("lease", lease) or {}
    return str((body.get("spec") or {}).get("holderIdentity") or "")


def test_one_replica_leads_and_the_other_takes_over_after_a_kill(
    replicas: list[Replica], kubectl: Kubectl, admin: Kubectl
) -> None:
    leader = leader_of(replicas)
    [standby] = [r for r in replicas if r is not leader]
    wait_for("the standby to stand by", lambda: "stands by" in standby.log())
    assert lease_holder(admin) in leader.log()
    source_cluster(kubectl, "db", replicas=1)
    kubectl.apply(operation("first", "db"))
    assert wait_phase(kubectl, "first", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    assert "first" not in standby.log()  # it never touched it
    assert standby.engine_writes() == 0

    killed = time.monotonic()
    leader.kill()
    wait_for("the standby to take over", standby.leads, timeout=30)
    failover = time.monotonic() - killed
    print(f"\nleader SIGKILLed → the other replica acting: {failover:.1f} s")
    # The Lease lasts 6 s in the e2e settings (15 s by default): the standby acts once
    # the dead leader's Lease has expired, plus at most one jittered retry.
    assert failover <= 15
    kubectl.apply(operation("second", "db"))
    assert wait_phase(kubectl, "second", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    assert standby.metric("clone_operator_leader")[""] == 1


def test_a_paused_leader_never_writes_after_losing_its_lease(
    replicas: list[Replica], kubectl: Kubectl, admin: Kubectl, operator_kubeconfig: Path
) -> None:
    leader = leader_of(replicas)
    [standby] = [r for r in replicas if r is not leader]
    source_cluster(kubectl, "db", replicas=1)
    kubectl.apply(operation("before", "db"))
    assert wait_phase(kubectl, "before", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    wait_finalized(kubectl, "before")
    writes_before = leader.engine_writes()

    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGSTOP)  # partitioned: alive, silent
    wait_for("the standby to take over", standby.leads, timeout=30)
    # Work arrives while the old leader is paused; the new one does it.
    kubectl.apply(operation("during", "db"))
    assert wait_phase(kubectl, "during", {"Succeeded", "Failed"})["phase"] == "Succeeded"

    leader.proc.send_signal(signal.SIGCONT)
    # The resumed replica reads the Lease, sees another holder and steps down; its
    # fence refused every engine write meanwhile (its renew deadline had passed).
    wait_for("the resumed replica to step down", lambda: "stopped leading" in leader.log())
    assert leader.engine_writes() == writes_before
    refused = leader.metric("clone_operator_writes_refused_total")[""]
    print(f"\nwrites refused by the resumed old leader: {refused:.0f}")
    assert leader.metric("clone_operator_leader")[""] == 0
    assert f"leading: {lease_holder(admin)} holds" in standby.log()

    def lease_events() -> set[str]:
        events = admin.in_namespace(E2E_RELEASE_NAMESPACE).items("events.events.k8s.io")
        return {e["reason"] for e in events if e.get("regarding", {}).get("kind") == "Lease"}

    wait_for("the Lease's Events", lambda: {"LeaderElected", "LeadershipLost"} <= lease_events())
