{{/* Chart name, overridable with nameOverride. */}}
{{- define "clone-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>"; at most 63 characters (DNS label).
*/}}
{{- define "clone-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "clone-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "clone-operator.labels" -}}
helm.sh/chart: {{ include "clone-operator.chart" . }}
{{ include "clone-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clone-operator
{{- end }}

{{/* The operator pod's identity: the Deployment selector and the Service selector. */}}
{{- define "clone-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clone-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The `helm test` pod's labels; disjoint from the operator's selector. */}}
{{- define "clone-operator.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "clone-operator.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{- define "clone-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clone-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "clone-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC rules for namespaced resources: the operator's whole working set inside
a namespace. Shared by the ClusterRole (all namespaces) and the per-namespace
Roles (watchNamespaces). Keep in sync with what clone_operator.k8s calls.
*/}}
{{- define "clone-operator.namespacedRules" -}}
# Patched only (kopf's finalizers and annotations, the engine's status): never replaced.
- apiGroups: ["cloning.dev"]
  resources: ["cloningoperations", "cloneobjects"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["cloning.dev"]
  resources: ["cloningoperations/status", "cloneobjects/status"]
  verbs: ["get", "patch"]
# Watched (handlers/watches.py, with a label selector): clones' StatefulSets and PVCs.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Never watched: listed only to find what an owner made (engine/clusters.py `owned`).
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "list", "create", "patch", "delete"]
# The Transfer copy method's mover pods (engine/transfers.py), admitted only when the
# requester may create pods there (api/policies.py); their logs are its progress.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Consistency hooks (engine/hooks.py): an exec into the source's pods, admitted only when
# the requester may create pods/exec there (api/policies.py). A websocket exec is a GET
# upgrade: authorized as `create` since Kubernetes 1.30's AuthorizePodWebsocketUpgradeCreatePermission,
# as `get` before it.
- apiGroups: [""]
  resources: ["pods/exec"]
  verbs: ["create", "get"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  # list: a target volume's ProvisioningFailed Events (the storage's own refusal).
  verbs: ["create", "patch", "list"]
# Snapshot copies: the snapshots a clone takes of its source (removed after it).
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["groupsnapshot.storage.k8s.io"]
  resources: ["volumegroupsnapshots"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Per-source locks: made, read and deleted by name, never listed.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "delete"]
{{- end }}

{{/* Cluster-scoped reads: node regions, and the CRDs kopf scans. */}}
{{- define "clone-operator.clusterRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
# What the storage can do, read before a clone starts (engine/storage.py).
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get"]
- apiGroups: ["storage.k8s.io"]
  resources: ["storageclasses"]
  verbs: ["list"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotclasses"]
  verbs: ["list"]
- apiGroups: ["groupsnapshot.storage.k8s.io"]
  resources: ["volumegroupsnapshotclasses"]
  verbs: ["list"]
# A Retain class: the content of a snapshot the operator took is set to Delete, so the
# storage's snapshot goes with it (only a content bound to that snapshot).
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents"]
  verbs: ["get", "patch"]
# Auto: may the requester create VolumeSnapshots? (answered, never stored)
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- if .Values.webhook.enabled }}
# kopf creates its webhook configurations once and then patches only those, named
# clone-operator.cloning.dev. RBAC cannot limit `create` by name: the policy
# <fullname>-webhook-configurations (webhook.yaml) refuses any other name.
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]
  verbs: ["create"]
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]
  resourceNames: ["clone-operator.cloning.dev"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
