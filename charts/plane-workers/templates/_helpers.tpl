{{/*
Names, labels and the one pod spec every consumer and job shares.
*/}}

{{- define "plane-workers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name. Not truncated: the guard template fails on names that are too long,
because cutting them could make two workloads collide.
*/}}
{{- define "plane-workers.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "plane-workers.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: only the immutable subset. `component` is the workload name (or empty for
release-wide objects).
Call with (dict "root" $ "component" NAME).
*/}}
{{- define "plane-workers.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plane-workers.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Standard labels. Call with (dict "root" $ "component" NAME). */}}
{{- define "plane-workers.labels" -}}
{{ include "plane-workers.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: plane
helm.sh/chart: {{ include "plane-workers.chart" .root }}
{{- end }}

{{- define "plane-workers.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plane-workers.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference. Skaffold passes `TAG@DIGEST`, and `TAG@` when the image was not pushed (no
digest), hence the trimSuffix. Call with (dict "root" $ "gpu" BOOL).
*/}}
{{- define "plane-workers.image" -}}
{{- $image := .root.Values.image }}
{{- $tag := $image.tag | default .root.Chart.AppVersion }}
{{- if and .gpu .root.Values.gpuNodePool.imageTag }}
{{- $tag = .root.Values.gpuNodePool.imageTag }}
{{- end }}
{{- printf "%s:%s" $image.repository ($tag | toString | trimSuffix "@") }}
{{- end }}

{{/*
Pod annotations: the config checksum rolls pods when the ConfigMap changes.
Call with (dict "root" $ "w" RESOLVED_WORKLOAD).
*/}}
{{- define "plane-workers.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .w.settings.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod spec of every consumer and job. Everything a Job needs is here, so the Job that
`kubectl create job --from=cronjob/...` copies out of the jobTemplate runs unchanged.
Call with (dict "root" $ "w" RESOLVED_WORKLOAD) (see _workloads.tpl).
*/}}
{{- define "plane-workers.podSpec" -}}
{{- $root := .root }}
{{- $w := .w }}
{{- $s := $w.settings }}
{{- $consumer := eq $w.kind "consumer" -}}
serviceAccountName: {{ include "plane-workers.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- /* Workers talk to Kafka, PostgreSQL and S3, never to Services through env variables. */}}
enableServiceLinks: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $w.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $w.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $w.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $s.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $consumer }}
terminationGracePeriodSeconds: {{ $s.terminationGracePeriodSeconds | int }}
{{- else }}
restartPolicy: Never
{{- end }}
containers:
  - name: worker
    image: {{ include "plane-workers.image" (dict "root" $root "gpu" $w.gpu) }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml $w.args | nindent 6 }}
    env:
      {{- /* Chart-owned settings: the probes and the metrics port depend on them. */}}
      - name: HEALTH_FILE
        value: /tmp/plane-workers-health
      - name: METRICS_PORT
        value: {{ ternary $root.Values.metrics.port 0 $consumer | toString | quote }}
    envFrom:
      - configMapRef:
          name: {{ include "plane-workers.fullname" $root }}
      - secretRef:
          name: {{ $root.Values.existingSecret }}
    {{- if $consumer }}
    ports:
      - name: metrics
        containerPort: {{ $root.Values.metrics.port | int }}
        protocol: TCP
    {{- $probe := list "plane-workers" "healthcheck" "--max-age" ($s.livenessProbe.maxAgeSeconds | int | toString) }}
    startupProbe:
      exec:
        command: {{ toJson $probe }}
      periodSeconds: {{ $s.startupProbe.periodSeconds | int }}
      timeoutSeconds: {{ $s.startupProbe.timeoutSeconds | int }}
      failureThreshold: {{ $s.startupProbe.failureThreshold | int }}
    livenessProbe:
      exec:
        command: {{ toJson $probe }}
      periodSeconds: {{ $s.livenessProbe.periodSeconds | int }}
      timeoutSeconds: {{ $s.livenessProbe.timeoutSeconds | int }}
      failureThreshold: {{ $s.livenessProbe.failureThreshold | int }}
    {{- end }}
    {{- with $w.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- with $root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- /* The only writable path: the health file, Python's tempfiles and export scratch. */}}
  - name: tmp
    emptyDir:
      sizeLimit: {{ $s.tmpSizeLimit }}
  {{- with $root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
