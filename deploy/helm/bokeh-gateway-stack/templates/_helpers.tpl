{{/* Names: every object is <release>-<chart> or <release> when the release already says it. */}}
{{- define "bgs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bgs.bokeh" -}}{{ include "bgs.fullname" . }}-bokeh{{- end -}}
{{- define "bgs.gateway" -}}{{ include "bgs.fullname" . }}-gateway{{- end -}}

{{/* Labels every object carries; `helm uninstall` and the tests find the release's objects by them. */}}
{{- define "bgs.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "bgs.versionLabels" . }}
{{- end -}}

{{/* The labels that change with the chart and image versions (never in a selector). */}}
{{- define "bgs.versionLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (bokeh or gateway): stable across upgrades. */}}
{{- define "bgs.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* registry/repository:tag of one component's image. */}}
{{- define "bgs.image" -}}
{{- $values := index .root.Values .component -}}
{{- $tag := $values.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) $values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the signing key, and the key in it. */}}
{{- define "bgs.secretName" -}}
{{- .Values.secretKey.existingSecret | default (printf "%s-secret-key" (include "bgs.fullname" .)) -}}
{{- end -}}
{{- define "bgs.secretKeyKey" -}}
{{- if .Values.secretKey.existingSecret -}}{{ .Values.secretKey.existingSecretKey }}{{- else -}}bokeh-secret-key{{- end -}}
{{- end -}}

{{/* PUBLIC_ORIGINS as the images read it. */}}
{{- define "bgs.publicOrigins" -}}
{{- join "," .Values.publicOrigins -}}
{{- end -}}

{{/* Settings both images read the same way, and the key as a mounted file. */}}
{{- define "bgs.sharedEnv" -}}
- name: BOKEH_PREFIX
  value: {{ .Values.bokehPrefix | quote }}
- name: PUBLIC_ORIGINS
  value: {{ include "bgs.publicOrigins" . | quote }}
- name: BOKEH_SECRET_KEY_FILE
  value: /run/secrets/bokeh/{{ include "bgs.secretKeyKey" . }}
{{- end -}}

{{/* `env` values as a container's env list, in name order. */}}
{{- define "bgs.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end -}}
{{- end -}}

{{/* The pod-level pieces both Deployments share. */}}
{{- define "bgs.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Neither component talks to the Kubernetes API.
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if .values.affinity }}
  {{- toYaml .values.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "bgs.selector" (dict "root" .root "component" .component) | nindent 14 }}
{{- end }}
{{- end -}}

{{/* The volumes both Deployments mount: the key, and a writable /tmp. */}}
{{- define "bgs.volumes" -}}
volumes:
  - name: secret-key
    secret:
      secretName: {{ include "bgs.secretName" . }}
      defaultMode: 0440
      items:
        - key: {{ include "bgs.secretKeyKey" . }}
          path: {{ include "bgs.secretKeyKey" . }}
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 64Mi
{{- end -}}
{{- define "bgs.volumeMounts" -}}
volumeMounts:
  - name: secret-key
    mountPath: /run/secrets/bokeh
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- end -}}
