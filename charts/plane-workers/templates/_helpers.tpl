{{/*
Names, labels, and the one pod spec every consumer, job, hook and test pod shares.
*/}}

{{- define "plane-workers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Shorten NAME to at most MAX characters, deterministically: a name that fits is kept as it is; a
longer one keeps its first MAX-9 characters and gets "-" and the first 8 hex digits of the SHA-256
of the whole name, so two long names that share a beginning still differ.
Call with (list NAME MAX).
*/}}
{{- define "plane-workers.fit" -}}
{{- $name := index . 0 | toString }}
{{- $max := index . 1 | int }}
{{- if le (len $name) $max }}
{{- $name }}
{{- else }}
{{- printf "%s-%s" (trunc (sub $max 9 | int) $name | trimSuffix "-") (sha256sum $name | trunc 8) }}
{{- end }}
{{- end }}

{{/*
Prefix of every object name: `<release>-<chart>` (just `<release>` when it already contains the
chart name), or fullnameOverride; at most 63 characters (plane-workers.fit).
*/}}
{{- define "plane-workers.fullname" -}}
{{- $name := "" }}
{{- if .Values.fullnameOverride }}
{{- $name = .Values.fullnameOverride | trimSuffix "-" }}
{{- else }}
{{- $chart := default .Chart.Name .Values.nameOverride }}
{{- if contains $chart .Release.Name }}
{{- $name = .Release.Name | trimSuffix "-" }}
{{- else }}
{{- $name = printf "%s-%s" .Release.Name $chart | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- include "plane-workers.fit" (list $name 63) }}
{{- end }}

{{/*
The name of one object of the release: `<fullname>-<suffix>` when that fits in `max` characters
(63, or 52 for CronJobs: the controller appends 11 to name their Jobs). Otherwise the fullname is
cut to make room and followed by the first 8 hex digits of its SHA-256, and the suffix (the
workload name) is kept whole: `<fullname cut>-<hash>-<suffix>`. The same release and values always
give the same names, and NOTES.txt prints them.
Call with (dict "root" $ "suffix" NAME "max" 63).
*/}}
{{- define "plane-workers.objectName" -}}
{{- $prefix := include "plane-workers.fullname" .root }}
{{- $max := .max | default 63 | int }}
{{- $name := printf "%s-%s" $prefix .suffix }}
{{- if le (len $name) $max }}
{{- $name }}
{{- else }}
{{- $room := sub $max (add (len .suffix) 10) | int }}
{{- if gt $room 0 }}
{{- printf "%s-%s-%s" (trunc $room $prefix | trimSuffix "-") (sha256sum $prefix | trunc 8) .suffix }}
{{- else }}
{{- include "plane-workers.fit" (list $name $max) }}
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

{{/*
Labels of a pod: the standard ones plus the workload's podLabels (the schema refuses the selector
keys there, so a pod always matches its Deployment). Call with (dict "root" $ "w" RESOLVED_WORKLOAD).
*/}}
{{- define "plane-workers.podLabels" -}}
{{ include "plane-workers.labels" (dict "root" .root "component" .w.name) }}
{{- with .w.settings.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "plane-workers.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plane-workers.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of the hook Jobs. Hooks run before anything else of the release exists, so
with serviceAccount.create the chart makes one for them as a hook too (hooks-serviceaccount.yaml);
otherwise they use the existing account the workers use.
*/}}
{{- define "plane-workers.hookServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "plane-workers.objectName" (dict "root" . "suffix" "hooks") }}
{{- else }}
{{- include "plane-workers.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/*
Image reference. Skaffold passes `TAG@DIGEST`, and `TAG@` when the image was not pushed (no
digest), hence the trimSuffix. Workloads the registry marks `gpu` (they need CUDA torch) run the
GPU build: image.gpuRepository (default image.repository) at image.gpuTag (default `<tag>-gpu`);
every other pod runs the CPU build and never pulls the large one.
Call with (dict "root" $ "gpu" BOOL "name" WORKLOAD).
*/}}
{{- define "plane-workers.image" -}}
{{- $image := .root.Values.image }}
{{- $repository := $image.repository }}
{{- $tag := $image.tag | default .root.Chart.AppVersion | toString | trimSuffix "@" }}
{{- if .gpu }}
{{- $repository = $image.gpuRepository | default $image.repository }}
{{- if $image.gpuTag }}
{{- $tag = $image.gpuTag | toString | trimSuffix "@" }}
{{- else if contains "@" $tag }}
{{- fail (printf "%s needs the GPU image (torch): image.tag pins a digest (%s) that cannot be suffixed with -gpu, so set image.gpuTag (e.g. `TAG@sha256:DIGEST` of the VARIANT=gpu build; skaffold -p gpu does), or set consumers.%s.enabled=false" .name $tag .name) }}
{{- else }}
{{- $tag = printf "%s-gpu" $tag }}
{{- end }}
{{- end }}
{{- printf "%s:%s" $repository $tag }}
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
A value as the text an environment variable or a Kafka config takes. Helm reads YAML numbers as
floats: 1048576 prints as such, not as 1.048576e+06.
*/}}
{{- define "plane-workers.text" -}}
{{- if and (kindIs "float64" .) (eq (. | int64 | float64) .) }}
{{- . | int64 | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
The non-secret settings as a map of strings: the ConfigMap's data, and the hook Jobs' env (hooks
run before the ConfigMap exists). Empty values are left out, so the application defaults apply.
*/}}
{{- define "plane-workers.configData" -}}
{{- $data := dict }}
{{- range $key, $value := .Values.config }}
{{- $text := include "plane-workers.text" $value }}
{{- if ne $text "" }}
{{- $_ := set $data $key $text }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* Where the Kafka TLS files are mounted (kafkaTls), and their names there. */}}
{{- define "plane-workers.kafkaTlsDir" -}}
/etc/plane-workers/kafka-tls
{{- end }}

{{/*
The container env every pod shares: the chart-owned settings, the Kafka TLS file paths, the
secrets referenced key by key (secretEnv), then extraEnv. Later entries win over earlier ones and
over envFrom. Call with (dict "root" $ "w" RESOLVED_WORKLOAD).
*/}}
{{- define "plane-workers.env" -}}
{{- $root := .root }}
{{- $consumer := eq .w.kind "consumer" }}
{{- /* Chart-owned settings: the probes and the metrics port depend on them. */}}
- name: HEALTH_FILE
  value: /tmp/plane-workers-health
- name: METRICS_PORT
  value: {{ ternary $root.Values.metrics.port 0 $consumer | toString | quote }}
{{- if eq .w.kind "hook" }}
{{- /* Hooks run before the ConfigMap exists: the same settings, inline. */}}
{{- range $key, $value := include "plane-workers.configData" $root | fromYaml }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- $tls := $root.Values.kafkaTls }}
{{- if $tls.enabled }}
{{- $dir := include "plane-workers.kafkaTlsDir" $root }}
{{- if $tls.ca.secretName }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- end }}
{{- if $tls.clientCertificate.secretName }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "%s/client.crt" $dir | quote }}
- name: KAFKA_SSL_KEY_LOCATION
  value: {{ printf "%s/client.key" $dir | quote }}
{{- end }}
{{- end }}
{{- range $env, $ref := $root.Values.secretEnv }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
      {{- if hasKey $ref "optional" }}
      optional: {{ $ref.optional }}
      {{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
envFrom: the ConfigMap (not for hooks), existingSecret (when set), then extraEnvFrom.
Call with (dict "root" $ "w" RESOLVED_WORKLOAD).
*/}}
{{- define "plane-workers.envFrom" -}}
{{- $root := .root }}
{{- if ne .w.kind "hook" }}
- configMapRef:
    name: {{ include "plane-workers.fullname" $root }}
{{- end }}
{{- with $root.Values.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with $root.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
topologySpreadConstraints, each with the workload's own selector labels when it names none (a
constraint without a labelSelector matches no pod and spreads nothing).
Call with (dict "root" $ "w" RESOLVED_WORKLOAD).
*/}}
{{- define "plane-workers.topologySpreadConstraints" -}}
{{- $selector := include "plane-workers.selectorLabels" (dict "root" .root "component" .w.name) | fromYaml }}
{{- $constraints := list }}
{{- range .w.settings.topologySpreadConstraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $constraints = append $constraints $c }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/*
The pod spec of every consumer, job, hook and test pod. Everything a Job needs is here, so the
Job that `kubectl create job --from=cronjob/...` copies out of the jobTemplate runs unchanged.
Kinds: consumer (probes, metrics port, grace period), cronjob, hook (inline config, the hooks'
ServiceAccount), test.
Call with (dict "root" $ "w" RESOLVED_WORKLOAD) (see _workloads.tpl).
*/}}
{{- define "plane-workers.podSpec" -}}
{{- $root := .root }}
{{- $w := .w }}
{{- $s := $w.settings }}
{{- $consumer := eq $w.kind "consumer" }}
{{- $account := include "plane-workers.serviceAccountName" $root }}
{{- if eq $w.kind "hook" }}
{{- $account = include "plane-workers.hookServiceAccountName" $root }}
{{- end -}}
serviceAccountName: {{ $account }}
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
{{- with $s.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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
{{- if $s.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- include "plane-workers.topologySpreadConstraints" . | nindent 2 }}
{{- end }}
{{- if $consumer }}
terminationGracePeriodSeconds: {{ $s.terminationGracePeriodSeconds | int }}
{{- else }}
restartPolicy: Never
{{- end }}
{{- with $w.podActiveDeadlineSeconds }}
activeDeadlineSeconds: {{ . | int }}
{{- end }}
containers:
  - name: worker
    image: {{ include "plane-workers.image" (dict "root" $root "gpu" $w.gpu "name" $w.name) }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml $w.args | nindent 6 }}
    env:
      {{- include "plane-workers.env" . | trim | nindent 6 }}
    {{- $envFrom := include "plane-workers.envFrom" . | trim }}
    {{- if $envFrom }}
    envFrom:
      {{- $envFrom | nindent 6 }}
    {{- end }}
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
    {{- with $s.readinessProbe }}
    {{- if .enabled }}
    {{- /* Not ready: topics missing, no partitions assigned yet, holding on an outage, stopping. */}}
    readinessProbe:
      exec:
        command: {{ toJson (list "plane-workers" "healthcheck" "--ready" "--max-age" (.maxAgeSeconds | int | toString)) }}
      periodSeconds: {{ .periodSeconds | int }}
      timeoutSeconds: {{ .timeoutSeconds | int }}
      failureThreshold: {{ .failureThreshold | int }}
      successThreshold: 1
    {{- end }}
    {{- end }}
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
      {{- if $root.Values.kafkaTls.enabled }}
      - name: kafka-tls
        mountPath: {{ include "plane-workers.kafkaTlsDir" $root }}
        readOnly: true
      {{- end }}
      {{- with $root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- /* The only writable path: the health file, Python's tempfiles and export scratch. */}}
  - name: tmp
    emptyDir:
      sizeLimit: {{ $s.tmpSizeLimit }}
  {{- with $root.Values.kafkaTls }}
  {{- if .enabled }}
  {{- /* One folder from up to two Secrets (e.g. Strimzi's cluster CA and a KafkaUser's pair). */}}
  - name: kafka-tls
    projected:
      defaultMode: 0440
      sources:
        {{- with .ca }}
        {{- if .secretName }}
        - secret:
            name: {{ .secretName }}
            items:
              - key: {{ .key }}
                path: ca.crt
        {{- end }}
        {{- end }}
        {{- with .clientCertificate }}
        {{- if .secretName }}
        - secret:
            name: {{ .secretName }}
            items:
              - key: {{ .certificateKey }}
                path: client.crt
              - key: {{ .keyKey }}
                path: client.key
        {{- end }}
        {{- end }}
  {{- end }}
  {{- end }}
  {{- with $root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
What every Job of the chart (CronJob runs, hooks) does when a pod fails: exit code 2 is a usage or
configuration error (shared/cli/errors.py), which a retry cannot fix, so the Job fails at once
instead of using up backoffLimit; a pod that was evicted or preempted (DisruptionTarget) is retried
without counting against it.
*/}}
{{- define "plane-workers.podFailurePolicy" -}}
rules:
  - action: FailJob
    {{- /* Empty, not absent: Kubernetes 1.27's schema requires the field (validation wants it empty). */}}
    onPodConditions: []
    onExitCodes:
      containerName: worker
      operator: In
      values: [2]
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"
{{- end }}
