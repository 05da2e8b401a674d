{{/*
Resolve the workloads once, then render unchanged bodies: every template ranges over the output of
"plane-workers.consumers" / "plane-workers.cronjobs" and never merges values itself.

Templates can only return strings, so resolvers return YAML: `include ... | fromYaml`.
*/}}

{{/* workloads.yaml, generated from shared/registry.py. */}}
{{- define "plane-workers.workloads" -}}
{{- $workloads := .Files.Get "workloads.yaml" | fromYaml }}
{{- if or (not $workloads) (hasKey $workloads "Error") }}
{{- fail "workloads.yaml is missing or invalid: run `plane-workers export-helm`" }}
{{- end }}
{{- toYaml $workloads }}
{{- end }}

{{/*
Deep-merge per-name overrides over the defaults. deepCopy: mergeOverwrite writes into its first
argument, which must not be .Values.
Call with (dict "defaults" DICT "override" DICT_OR_NIL).
*/}}
{{- define "plane-workers.settings" -}}
{{- toYaml (mergeOverwrite (deepCopy .defaults) (deepCopy (.override | default dict))) }}
{{- end }}

{{/*
Fields every resolved workload has, consumer or job:
  name, kind, objectName, gpu, args, resources, nodeSelector, tolerations, runtimeClassName,
  settings (defaults <- per-name values), spec (the workloads.yaml entry).
Call with (dict "root" $ "name" NAME "kind" KIND "spec" ENTRY "settings" MERGED).
*/}}
{{- define "plane-workers.resolve" -}}
{{- $root := .root }}
{{- $s := .settings }}
{{- $gpu := .spec.gpu | default false }}
{{- $gpuPool := and $gpu $root.Values.gpuNodePool.enabled }}
{{- /* Resources: the registry's, then the defaults', then the per-name values'. */}}
{{- $resources := mergeOverwrite (deepCopy (.spec.resources | default dict)) (deepCopy ($s.resources | default dict)) }}
{{- if and $gpu (not $gpuPool) }}
{{- /* Off the GPU pool a GPU limit would leave the pod pending forever: run on CPU instead. */}}
{{- $_ := unset ($resources.limits | default dict) "nvidia.com/gpu" }}
{{- end }}
{{- $nodeSelector := deepCopy ($s.nodeSelector | default dict) }}
{{- $tolerations := $s.tolerations | default list }}
{{- if $gpuPool }}
{{- $nodeSelector = mergeOverwrite $nodeSelector (deepCopy $root.Values.gpuNodePool.nodeSelector) }}
{{- $tolerations = concat $tolerations $root.Values.gpuNodePool.tolerations }}
{{- end }}
name: {{ .name }}
kind: {{ .kind }}
objectName: {{ printf "%s-%s" (include "plane-workers.fullname" $root) .name }}
gpu: {{ $gpu }}
args: {{ concat .spec.args ($s.extraArgs | default list) | toJson }}
resources: {{ $resources | toJson }}
nodeSelector: {{ $nodeSelector | toJson }}
tolerations: {{ $tolerations | toJson }}
runtimeClassName: {{ ternary $root.Values.gpuNodePool.runtimeClassName "" $gpuPool | quote }}
settings: {{ $s | toJson }}
spec: {{ .spec | toJson }}
{{- end }}

{{/*
Enabled consumers, by name. Adds: topic and group (physical: KAFKA_TOPIC_PREFIX + logical), replicas
(capped at the topic's partitions), autoscaler ("hpa", "keda" or ""), maxReplicas (the
autoscaler's, capped too).
*/}}
{{- define "plane-workers.consumers" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- range $name, $spec := $workloads.consumers }}
{{- $s := include "plane-workers.settings" (dict "defaults" $root.Values.consumerDefaults "override" (get $root.Values.consumers $name)) | fromYaml }}
{{- if $s.enabled }}
{{- $w := include "plane-workers.resolve" (dict "root" $root "name" $name "kind" "consumer" "spec" $spec "settings" $s) | fromYaml }}
{{- $partitions := $spec.partitions | int }}
{{- $hpa := $s.autoscaling.hpa }}
{{- $keda := $s.autoscaling.keda }}
{{- $autoscaler := "" }}
{{- $max := 0 }}
{{- if $hpa.enabled }}
{{- $autoscaler = "hpa" }}
{{- $max = min ($hpa.maxReplicas | int) $partitions }}
{{- end }}
{{- if $keda.enabled }}
{{- $autoscaler = "keda" }}
{{- $max = min ($keda.maxReplicaCount | int) $partitions }}
{{- end }}
{{- $prefix := $root.Values.config.KAFKA_TOPIC_PREFIX | default "" }}
{{- $_ := set $w "topic" (printf "%s%s" $prefix $spec.topic) }}
{{- $_ = set $w "group" (printf "%s%s" $prefix $spec.group) }}
{{- $_ = set $w "replicas" (min ($s.replicas | int) $partitions) }}
{{- $_ = set $w "autoscaler" $autoscaler }}
{{- $_ = set $w "maxReplicas" $max }}
{{ $name }}: {{ $w | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/* Enabled CronJobs, by name. Adds: schedule and activeDeadlineSeconds (registry's unless overridden). */}}
{{- define "plane-workers.cronjobs" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- range $name, $spec := $workloads.cronjobs }}
{{- $s := include "plane-workers.settings" (dict "defaults" $root.Values.cronjobDefaults "override" (get $root.Values.cronjobs $name)) | fromYaml }}
{{- if $s.enabled }}
{{- $w := include "plane-workers.resolve" (dict "root" $root "name" $name "kind" "cronjob" "spec" $spec "settings" $s) | fromYaml }}
{{- $_ := set $w "schedule" ($s.schedule | default $spec.schedule) }}
{{- $_ = set $w "activeDeadlineSeconds" ($s.activeDeadlineSeconds | default $spec.activeDeadlineSeconds | int) }}
{{ $name }}: {{ $w | toJson }}
{{- end }}
{{- end }}
{{- end }}
