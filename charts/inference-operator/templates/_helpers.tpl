{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "inference-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "inference-operator.fullname" -}}
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

{{- define "inference-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "inference-operator.labels" -}}
helm.sh/chart: {{ include "inference-operator.chart" . }}
{{ include "inference-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: inference-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "inference-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inference-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inference-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "inference-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or implied by more than one replica. */}}
{{- define "inference-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "inference-operator.leaseName" -}}
{{- default (include "inference-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The RBAC rules for InferenceEndpoints, Secrets and Events, shared by the ClusterRole and the namespaced Role. */}}
{{- define "inference-operator.rules" -}}
# Exactly what the operator calls (tests/rbac.rs measures it): list/watch for the controller,
# patch for kube's finalizer() (a JSON patch of metadata.finalizers), status by server-side apply.
- apiGroups: ["esinference.io"]
  resources: ["inferenceendpoints"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["esinference.io"]
  resources: ["inferenceendpoints/status"]
  verbs: ["patch"]
# Credentials, CA certificates and ECK's <name>-es-elastic-user / <name>-es-http-certs-public.
# watch: a metadata-only watch (rotation detection); list: contents are read one Secret at a
# time with a LIST narrowed by name and the opt-in label, so an unlabelled Secret's content
# never leaves the API server (no get: a GET cannot be narrowed by label).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- if .Values.config.persistPreviousCredential }}
# --persist-previous-credential: the operator's own Secret per endpoint holding the previous
# accepted credential, written by server-side apply (patch; an apply that creates the Secret is
# authorized as create too) and read with the list above. Off by default (docs/security.md).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
