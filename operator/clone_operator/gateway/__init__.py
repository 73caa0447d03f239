"""The seeds' HTTP APIs over the custom resources: `clone-operator api`.

A separate, stateless process. It serves the Typesense cluster-cloning API on
CloningOperations and the Bridge clone-objects API on CloneObjects, and only
reads and writes those resources: the operator does the work. Every call it
makes for a request carries the caller's own bearer token, so Kubernetes RBAC
and admission decide who may do what; the gateway holds no rights on the
custom resources. Its only own state is one id counter per namespace (`ids`).

Modules, lowest layer first (pyproject's import-linter contract checks it):
`settings`, `auth` (who is calling, which namespace), `views` (pure: resource
→ seed JSON), `metrics`; `ids` (the Bridge's integer ids); `context` (the caller, errors);
`operations` and `objects` (the two APIs' routes, independent of each other);
`app` (assembly and serving).

It has no HTTP client of its own: it calls the API server through the shared core
(`clone_operator.kube`: a caller's token, or its own ServiceAccount for the
counters) and must not import the operator's client (`clone_operator.k8s`), the
engine, or kopf.
"""
