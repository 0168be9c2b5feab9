{{/*
The one place values become wsgate's command-line flags (see `wsgate run --help`). Each flag is written as
"--name=value" (quoted) so a value can never be read as a flag nor break the YAML. Listener addresses are
fixed: their ports are the container ports declared in the Deployment. The Lease namespace and this replica's
identity come from the POD_NAMESPACE and POD_NAME environment variables (downward API).
*/}}
{{- define "wsgate.args" -}}
{{- $c := .Values.controller -}}
- run
- {{ printf "--http-addr=0.0.0.0:%s" (include "wsgate.httpPort" .) | quote }}
{{- if .Values.tls.enabled }}
- {{ printf "--https-addr=0.0.0.0:%s" (include "wsgate.httpsPort" .) | quote }}
{{- /* Redirects to https:// name the port clients reach, the Service's, not the container's. */}}
- {{ printf "--https-redirect-port=%d" (int .Values.service.ports.https) | quote }}
{{- end }}
- {{ printf "--admin-addr=0.0.0.0:%s" (include "wsgate.adminPort" .) | quote }}
- {{ printf "--ingress-class=%s" .Values.ingressClass.name | quote }}
- {{ printf "--drain-timeout=%d" (int $c.drainTimeoutSeconds) | quote }}
- {{ printf "--shutdown-delay=%d" (int $c.shutdownDelaySeconds) | quote }}
- {{ printf "--log-format=%s" $c.log.format | quote }}
- {{ printf "--log-level=%s" $c.log.level | quote }}
{{- if $c.accessLog }}
- "--access-log=on"
{{- end }}
{{- if gt (int $c.maxConnections) 0 }}
- {{ printf "--max-connections=%d" (int $c.maxConnections) | quote }}
{{- end }}
{{- if gt (int $c.maxTrackedClients) 0 }}
- {{ printf "--max-tracked-clients=%d" (int $c.maxTrackedClients) | quote }}
{{- end }}
{{- with $c.trustedProxies }}
- {{ printf "--trusted-proxies=%s" (join "," .) | quote }}
{{- end }}
{{- if $c.proxyProtocol }}
- "--proxy-protocol"
{{- end }}
{{- if $c.nginxCompat }}
- "--nginx-compat"
{{- end }}
{{- with $c.watchIngressClasses }}
- {{ printf "--watch-ingress-class=%s" (join "," .) | quote }}
{{- end }}
- {{ printf "--lease-name=%s" (include "wsgate.leaseName" .) | quote }}
{{- with $c.watchNamespace }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- if $c.publishService.enabled }}
- {{ printf "--publish-service=%s/%s" .Release.Namespace (include "wsgate.fullname" .) | quote }}
{{- else if $c.publishAddresses }}
- {{ printf "--publish-address=%s" (join "," $c.publishAddresses) | quote }}
{{- end }}
{{- range $c.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
