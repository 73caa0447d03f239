{{/* The gateway (`clone-operator api`): names and labels, disjoint from the operator's. */}}
{{- define "clone-operator.api.fullname" -}}
{{- printf "%s-api" (include "clone-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clone-operator.api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clone-operator.name" . }}-api
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{- define "clone-operator.api.labels" -}}
helm.sh/chart: {{ include "clone-operator.chart" . }}
{{ include "clone-operator.api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clone-operator
{{- end }}
