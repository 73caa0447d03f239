"""The operator's own client: its identity (kubernetes_asyncio's in-cluster or
kubeconfig loader), one fenced and counted connection pool (`api.Kube`).

The only code of the operator that talks to the API server. It speaks plain JSON
dicts and raises the shared errors (`clone_operator.kube`); nothing above it sees
HTTP. The gateway may not import it: that would let the gateway act as the operator.
"""
