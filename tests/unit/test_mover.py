"""The data mover's objects (builders/mover.py) and its progress (reconcile/transfer.py)."""

from __future__ import annotations

from typing import Any

import pytest

from clone_operator.builders import mover
from clone_operator.reconcile.transfer import progress
from tests.unit.factories import NAMESPACE, OWNER

KEY = "0123456789abcdef" * 4
WEST = mover.Placement(
    node_selector={"topology.kubernetes.io/region": "us-west-2"},
    tolerations=({"key": "cloning.dev/real-node", "operator": "Exists"},),
)


def plan(**changes: Any) -> mover.TransferPlan:
    fields: dict[str, Any] = {
        "owner": OWNER,
        "name": "clone-search-data-0",
        "namespace": NAMESPACE,
        "image": "clone-operator.local/mover:1",
        "source_claim": "data-search-0-cut",
        "target_claim": "data-search-west-0",
        "target_place": WEST,
        "run_as_user": 1000,
        "run_as_group": 3000,
    }
    return mover.TransferPlan(**{**fields, **changes})


def pods(p: mover.TransferPlan) -> list[dict[str, Any]]:
    return [mover.source_pod(p), mover.target_pod(p)]


def test_mover_pods_meet_the_restricted_pod_security_profile() -> None:
    for pod in pods(plan()):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 1000  # the source's own uid
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = spec["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        # No host access of any kind, no API credentials.
        assert not any(spec[k] for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert all(set(v) <= {"name", "persistentVolumeClaim", "secret", "emptyDir"}
                   for v in spec["volumes"])  # fmt: skip
        assert "hostPort" not in str(container.get("ports", []))
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False


def test_the_key_file_is_readable_by_the_mover_and_nobody_else() -> None:
    for pod in pods(plan()):
        secret = next(v["secret"] for v in pod["spec"]["volumes"] if "secret" in v)
        assert secret == {"secretName": "clone-search-data-0", "defaultMode": 0o440}
        # A Secret's files are root's: the pod's fsGroup is what lets uid 1000 read them.
        assert pod["spec"]["securityContext"]["fsGroup"] == 3000
    assert mover.source_pod(plan(fs_group=42))["spec"]["securityContext"]["fsGroup"] == 42


def test_the_source_reads_the_cut_read_only_and_dials_the_target_service() -> None:
    p = plan()
    source, target = pods(p)
    [claim] = [v for v in source["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"] == {"claimName": "data-search-0-cut", "readOnly": True}
    [claim] = [v for v in target["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"] == {"claimName": "data-search-west-0", "readOnly": False}
    env = {e["name"]: e["value"] for e in source["spec"]["containers"][0]["env"]}
    assert env["MOVER_TARGET"] == f"clone-search-data-0.{NAMESPACE}.svc.cluster.local:8000"
    assert env["MOVER_KEY_FILE"] == "/keys/psk.txt"
    assert [c["args"] for c in (source["spec"]["containers"][0], target["spec"]["containers"][0])] \
        == [["source"], ["target"]]  # fmt: skip
    # Each end where it belongs: the target in the target's region, the source unpinned.
    assert target["spec"]["nodeSelector"] == {"topology.kubernetes.io/region": "us-west-2"}
    assert "nodeSelector" not in source["spec"]


def test_the_service_selects_the_target_pod_only() -> None:
    p = plan()
    service = mover.target_service(p)
    selector = service["spec"]["selector"]
    source, target = pods(p)
    assert selector.items() <= target["metadata"]["labels"].items()
    assert not selector.items() <= source["metadata"]["labels"].items()
    assert service["spec"]["type"] == "ClusterIP"
    assert [port["port"] for port in service["spec"]["ports"]] == [mover.PORT]


def test_every_object_carries_the_operations_provenance_and_owner() -> None:
    p = plan()
    objects = [*pods(p), mover.target_service(p), mover.credentials(p, KEY)]
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["ownerReferences"] == [OWNER.reference()]
        assert OWNER.labels().items() <= meta["labels"].items()
        assert meta["labels"][mover.TRANSFER_LABEL] == p.name


def test_the_credentials_are_one_immutable_key_of_the_callers_making() -> None:
    secret = mover.credentials(plan(), KEY)
    assert secret["immutable"] is True
    assert secret["stringData"] == {"psk.txt": f"clone-search-data-0:{KEY}\n"}
    for weak in ("", "abc", "Z" * 64, KEY.upper()):
        with pytest.raises(ValueError, match="hex"):
            mover.credentials(plan(), weak)


# rsync 3.x `--info=progress2 --stats`, as the source pod logs it: progress lines
# rewritten with carriage returns, statistics at the end of an attempt.
CUT_SHORT = (
    "mover: target is clone-search-data-0.shop.svc.cluster.local:8000\n"
    "\r          0   0%    0.00kB/s    0:00:00  "
    "\r  5,242,880  16%    4.99MB/s    0:00:05  "
    "\r 10,485,760  33%    5.00MB/s    0:00:04  (xfr#0, to-chk=3/5)"
    "\nrsync: connection unexpectedly closed (3,211 bytes received so far) [sender]\n"
    "mover: source: attempt 1 ended with rsync status 12; resuming in 2 s\n"
)
RESUMED = (
    "\r 20,971,520  66%   10.00MB/s    0:00:01  "
    "\r 31,457,283 100%   12.50MB/s    0:00:02 (xfr#2, to-chk=0/5)\n"
    "\nNumber of files: 5 (reg: 3, dir: 2)\n"
    "Number of regular files transferred: 2\n"
    "Total file size: 31,457,283 bytes\n"
    "Total transferred file size: 31,457,283 bytes\n"
    "Literal data: 20,971,523 bytes\n"
    "Matched data: 10,485,760 bytes\n"
    "File list size: 0\n"
    "Total bytes sent: 20,980,112\n"
    "Total bytes received: 3,190\n"
)


def test_progress_reads_the_last_progress_line_mid_transfer() -> None:
    assert progress("mover: nothing yet\n") is None
    mid = progress(CUT_SHORT.split("\nrsync:")[0])
    assert mid is not None
    assert (mid.bytes_done, mid.percent, mid.rate) == (10_485_760, 33, 5 * 1024 * 1024)
    assert mid.total == 31_775_030  # from the percentage until rsync says
    assert (mid.finished, mid.attempts) == (False, 1)


def test_progress_of_a_resumed_transfer_shows_it_did_not_start_over() -> None:
    end = progress(CUT_SHORT + RESUMED)
    assert end is not None
    assert end.finished
    assert (end.bytes_done, end.total, end.percent) == (31_457_283, 31_457_283, 100)
    assert end.attempts == 2
    # What the first attempt left on the target was not sent again.
    assert end.matched_bytes == 10_485_760
    assert end.literal_bytes is not None
    assert end.literal_bytes < end.total
    assert end.rate == int(12.5 * 1024 * 1024)
