"""The Kubernetes client's shared core: what the operator and the gateway both need.

It owns the resource paths (`paths`), the error model (`errors`: the API server's
answer turned into one exception type per case), where the API server is and how
to reach it (`endpoint`: the pod's environment, else a kubeconfig) and a JSON
client over aiohttp that calls with a caller's bearer token (`client`).

It must not hold the operator's own identity or import kubernetes_asyncio: the
operator's identity and its fenced, counted connection pool live in
`clone_operator.k8s`, which the gateway may not import (pyproject's contracts).
"""
