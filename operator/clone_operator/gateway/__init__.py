"""The seeds' HTTP APIs over the custom resources: `clone-operator api`.

A separate, stateless process. It serves the Typesense cluster-cloning API on
CloningOperations and the Bridge clone-objects API on CloneObjects, and only
reads and writes those resources: the operator does the work. Every call it
makes for a request carries the caller's own bearer token, so Kubernetes RBAC
and admission decide who may do what; the gateway holds no rights on the
custom resources. Its only own state is one id counter per namespace (`ids`).

Modules: `settings` (environment), `kube` (the one I/O boundary: HTTP to the
API server), `auth` (who is calling, which namespace), `views` (pure: resource
→ seed JSON), `ids` (the Bridge's integer ids), `operations` and `objects`
(the two APIs' routes), `metrics`, `app` (assembly and serving).
"""
