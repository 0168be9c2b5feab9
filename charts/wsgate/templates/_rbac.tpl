{{/*
RBAC rules: exactly the list in src/controller/rbac.rs (tests/chart.rs compares the rendered (Cluster)Roles
with it), split by where each applies:

  wsgate.rules.namespaced   the watched kinds, their status, events   ClusterRole, or a Role in watchNamespace
  wsgate.rules.cluster      IngressClasses (cluster-scoped)            always a ClusterRole
  wsgate.rules.lease        the leader-election Lease                  a Role in the release namespace
*/}}

{{- define "wsgate.rules.namespaced" -}}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["wsgate.dev"]
  resources: ["websocketroutes"]
  verbs: ["get", "list", "watch"]
{{ include "wsgate.rules.services" . }}
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses/status"]
  verbs: ["patch"]
- apiGroups: ["wsgate.dev"]
  resources: ["websocketroutes/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{- define "wsgate.rules.services" -}}
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "wsgate.rules.cluster" -}}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingressclasses"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{- define "wsgate.rules.lease" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}

{{/*
Whether the release namespace needs its own read access to Services: with --publish-service the status writer
reads the chart's traffic Service, which a Role limited to another watched namespace does not cover.
*/}}
{{- define "wsgate.rbac.publishServiceOutsideWatch" -}}
{{- $w := .Values.controller.watchNamespace -}}
{{- if and $w (ne $w .Release.Namespace) .Values.controller.publishService.enabled -}}true{{- end -}}
{{- end -}}
