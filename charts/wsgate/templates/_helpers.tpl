{{/*
Names and labels shared by every template. Kubernetes names and label values are limited to 63 characters,
so every name is truncated there (and a trailing "-" left by the cut is trimmed).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "wsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The resource name prefix: fullnameOverride, else the release name, plus the chart name unless the release name
already contains it.
*/}}
{{- define "wsgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A name derived from the full name with a suffix: the prefix is cut so the whole stays within 63 characters.
Call as (include "wsgate.suffixedName" (list . "metrics")).
*/}}
{{- define "wsgate.suffixedName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $prefix := include "wsgate.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix $suffix -}}
{{- end -}}

{{/* chart-version, as the helm.sh/chart label. */}}
{{- define "wsgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the controller pods: stable across upgrades, so never add the version here. */}}
{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "wsgate.labels" -}}
helm.sh/chart: {{ include "wsgate.chart" . }}
{{ include "wsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: wsgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "wsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wsgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "wsgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Name of the metrics Service. */}}
{{- define "wsgate.metricsServiceName" -}}
{{- include "wsgate.suffixedName" (list . "metrics") -}}
{{- end -}}

{{/* Name of the leader-election Lease. */}}
{{- define "wsgate.leaseName" -}}
{{- .Values.controller.leaderElection.leaseName | default (include "wsgate.suffixedName" (list . "leader")) -}}
{{- end -}}

{{/* Container ports: the traffic listener, and the admin listener (/healthz, /readyz, /metrics). */}}
{{- define "wsgate.httpPort" -}}8080{{- end -}}
{{- define "wsgate.httpsPort" -}}8443{{- end -}}
{{- define "wsgate.adminPort" -}}9090{{- end -}}

{{/* terminationGracePeriodSeconds: preStop sleep + shutdown delay + drain timeout + margin, so the drain is never cut short. */}}
{{- define "wsgate.terminationGracePeriodSeconds" -}}
{{- $c := .Values.controller -}}
{{- add (int $c.preStopSleepSeconds) (int $c.shutdownDelaySeconds) (int $c.drainTimeoutSeconds) (int $c.terminationGraceMarginSeconds) -}}
{{- end -}}
