{{/* Names */}}
{{- define "modelyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelyard.fullname" -}}
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

{{- define "modelyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels: every object; selector labels: the stable subset, plus a component. */}}
{{- define "modelyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Images: repository@digest when a digest is given, else repository:tag. */}}
{{- define "modelyard.imageRef" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (toString .tag) }}
{{- end }}
{{- end }}

{{- define "modelyard.image" -}}
{{- include "modelyard.imageRef" .Values.image }}
{{- end }}

{{/* Pod Security "restricted": the pod's and each container's security context. */}}
{{- define "modelyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "modelyard.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Secrets */}}
{{- define "modelyard.secretName" -}}
{{- default (include "modelyard.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* A password: the given one, else the one already stored in the Secret (upgrades), else a
new random one. Arguments: context, secret name, given value. */}}
{{- define "modelyard.password" -}}
{{- $ctx := index . 0 }}{{- $secret := index . 1 }}{{- $given := index . 2 }}
{{- if $given }}
{{- $given }}
{{- else }}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace $secret }}
{{- if and $existing $existing.data (hasKey $existing.data "password") }}
{{- index $existing.data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Engines */}}
{{- define "modelyard.engineName" -}}
{{- printf "%s-engine-%s" (include "modelyard.fullname" .ctx) .engine.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelyard.engineKeysSecret" -}}
{{- printf "%s-engine-keys" (include "modelyard.fullname" .) }}
{{- end }}

{{/* The gateway's variable holding an engine's key: ENGINE_API_KEY_<NAME>. */}}
{{- define "modelyard.engineKeyEnv" -}}
{{- printf "ENGINE_API_KEY_%s" (.name | upper | replace "-" "_") }}
{{- end }}

{{/* Where an engine's key is: its own Secret, or the chart's engine-keys Secret. */}}
{{- define "modelyard.engineKeyRef" -}}
{{- if .engine.apiKey.existingSecret }}
name: {{ .engine.apiKey.existingSecret }}
key: {{ .engine.apiKey.key | default "api-key" }}
{{- else }}
name: {{ include "modelyard.engineKeysSecret" .ctx }}
key: {{ .engine.name }}
{{- end }}
{{- end }}

{{/* The gateway's environment (the gateway container and its set-up init container):
non-secret settings from the ConfigMap, secret ones from the Secret, the in-chart datastores'
URLs, and each engine's key (for add-endpoint --api-key-env). */}}
{{- define "modelyard.gatewayEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "modelyard.fullname" . }}
  - secretRef:
      name: {{ include "modelyard.secretName" . }}
env:
  {{- if .Values.postgresql.enabled }}
  - name: MODELYARD_DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "modelyard.fullname" . }}-postgresql
        key: database-url
  {{- end }}
  {{- if .Values.redis.enabled }}
  - name: MODELYARD_REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "modelyard.fullname" . }}-redis
        key: redis-url
  {{- end }}
  {{- range (include "modelyard.engines" . | fromYaml).engines }}
  - name: {{ include "modelyard.engineKeyEnv" . }}
    valueFrom:
      secretKeyRef:
        {{- include "modelyard.engineKeyRef" (dict "ctx" $ "engine" .) | trim | nindent 8 }}
  {{- end }}
{{- end }}

{{/* .Values.engines with every field filled in (a list given in values replaces the
default list whole, so entries may omit fields). Use: (include "modelyard.engines" . |
fromYaml).engines */}}
{{- define "modelyard.engines" -}}
{{- $out := list }}
{{- range .Values.engines }}
{{- $defaults := dict
  "servedModel" .name "image" (dict) "command" (list) "args" (list) "port" 8080
  "healthPath" "/health" "replicas" 1 "bundledModel" "" "modelVolume" (dict)
  "modelsSizeLimit" "1Gi" "gpus" 0 "resources" (dict) "env" (list)
  "apiKey" (dict "envName" "LLAMA_API_KEY" "existingSecret" "" "key" "")
  "nodeSelector" (dict) "tolerations" (list) "affinity" (dict) "runtimeClassName" ""
  "podAnnotations" (dict) "startupTimeoutSeconds" 600 "strategy" (dict "type" "Recreate")
  "shmSizeLimit" "" }}
{{- $out = append $out (merge (deepCopy .) $defaults) }}
{{- end }}
{{- toYaml (dict "engines" $out) }}
{{- end }}
