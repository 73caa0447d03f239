"""One kubeconfig loading for both clients (kube.endpoint): the gateway's pools and the
operator's identity (k8s.api.configuration) are made from what it finds."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from clone_operator.k8s.api import configuration
from clone_operator.kube.endpoint import Endpoint, KubeconfigError


def kubeconfig(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "here",
        "contexts": [
            {"name": "other", "context": {"cluster": "far", "user": "nobody"}},
            {"name": "here", "context": {"cluster": "local", "user": "me"}},
        ],
        "clusters": [
            {"name": "far", "cluster": {"server": "https://far:6443"}},
            {"name": "local", "cluster": {"server": "https://127.0.0.1:6443/", **(cluster or {})}},
        ],
        "users": [{"name": "nobody", "user": {"token": "no"}}, {"name": "me", "user": user}],
    }
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_current_context_gives_the_server_the_ca_and_a_client_certificate(
    tmp_path: Path,
) -> None:
    (tmp_path / "admin.crt").write_text("cert")
    path = kubeconfig(
        tmp_path,
        {"client-certificate": "admin.crt", "client-key-data": base64.b64encode(b"key").decode()},
        {"certificate-authority": str(tmp_path / "ca.crt")},
    )
    endpoint = Endpoint.from_kubeconfig(path)
    assert (endpoint.server, endpoint.ca_file, endpoint.verify) == (
        "https://127.0.0.1:6443",
        str(tmp_path / "ca.crt"),
        True,
    )
    assert endpoint.identity.cert_file == str(tmp_path / "admin.crt")  # relative to the file
    assert Path(endpoint.identity.key_file).read_bytes() == b"key"  # data: written out
    assert endpoint.identity.bearer() is None
    conf = configuration(endpoint)
    assert (conf.host, conf.ssl_ca_cert, conf.cert_file, conf.key_file, conf.verify_ssl) == (
        "https://127.0.0.1:6443",
        str(tmp_path / "ca.crt"),
        endpoint.identity.cert_file,
        endpoint.identity.key_file,
        True,
    )
    assert conf.api_key == {}


async def test_a_token_file_is_read_again_as_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    endpoint = Endpoint.from_kubeconfig(kubeconfig(tmp_path, {"tokenFile": "token"}))
    assert endpoint.identity.bearer() == "first"
    conf, rereading = configuration(endpoint), configuration(endpoint, reread_seconds=0.0)
    assert await conf.get_api_key_with_prefix("BearerToken") == "Bearer first"
    token.write_text("second\n")
    assert endpoint.identity.bearer() == "second"  # the gateway's own: read each time
    assert await conf.get_api_key_with_prefix("BearerToken") == "Bearer first"  # within 60 s
    assert await rereading.get_api_key_with_prefix("BearerToken") == "Bearer second"


def test_an_exec_plugins_token_is_used_until_it_expires(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(calls)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': sys.argv[1],"
        " 'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n"
    )
    user = {"exec": {"command": sys.executable, "args": [str(script), "t0k3n"],
                     "apiVersion": "client.authentication.k8s.io/v1"}}  # fmt: skip
    endpoint = Endpoint.from_kubeconfig(kubeconfig(tmp_path, user))
    assert endpoint.identity.bearer() == endpoint.identity.bearer() == "t0k3n"
    assert calls.read_text() == "x"  # asked once: the token has not expired


def test_an_exec_plugin_that_fails_says_so(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login')"]}}
    endpoint = Endpoint.from_kubeconfig(kubeconfig(tmp_path, user))
    with pytest.raises(KubeconfigError, match="no login"):
        endpoint.identity.bearer()


def test_a_user_this_loader_cannot_use_is_named(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"auth-provider": {"name": "gcp"}})
    with pytest.raises(KubeconfigError, match="uses auth-provider"):
        Endpoint.from_kubeconfig(path)


def test_insecure_skip_tls_verify_is_honoured_by_both_clients(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "t"}, {"insecure-skip-tls-verify": True})
    endpoint = Endpoint.from_kubeconfig(path)
    assert not endpoint.verify
    assert endpoint.ssl_context(False).verify_mode is ssl.CERT_NONE
    assert configuration(endpoint).verify_ssl is False
    assert json.dumps(configuration(endpoint).api_key) == '{"BearerToken": "Bearer t"}'


def test_kopfs_watches_log_in_as_the_engine_does(tmp_path: Path) -> None:
    from clone_operator.handlers.lifecycle import connection_info

    (tmp_path / "token").write_text("w4tch\n")
    path = kubeconfig(tmp_path, {"tokenFile": "token"}, {"certificate-authority": "ca.crt"})
    info = connection_info(Endpoint.from_kubeconfig(path))
    assert (info.server, info.ca_path, info.insecure, info.certificate_path) == (
        "https://127.0.0.1:6443",
        str(tmp_path / "ca.crt"),
        False,
        None,
    )
    assert info.as_http_headers() == {"Authorization": "Bearer w4tch"}


def test_no_client_librarys_own_kubeconfig_loader_is_loaded() -> None:
    """The engine, kopf's login and the gateway find the API server through kube.endpoint
    alone (checked in a fresh interpreter: this one may have loaded anything)."""
    code = (
        "import sys, clone_operator.cli, clone_operator.handlers, clone_operator.gateway.app\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes_asyncio.config')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
