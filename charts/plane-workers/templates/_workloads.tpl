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
Fields every resolved workload has, consumer, job or hook:
  name, kind, objectName (fits Kubernetes' limits: plane-workers.objectName), gpu, args,
  resources, nodeSelector, tolerations, runtimeClassName, settings (defaults <- per-name values),
  spec (the workloads.yaml entry).
Call with (dict "root" $ "name" NAME "kind" KIND "spec" ENTRY "settings" MERGED).
*/}}
{{- define "plane-workers.resolve" -}}
{{- $root := .root }}
{{- $s := .settings }}
{{- $gpu := .spec.gpu | default false }}
{{- /* Profile "gpu" (the default): GPU limit and gpuNodePool placement; "cpu": neither, but still
the GPU image, the only one with torch (which then runs on CPU). */}}
{{- $gpuPool := and $gpu (eq ($s.profile | default "gpu") "gpu") }}
{{- /* Resources: the registry's, then the defaults', then the per-name values'. */}}
{{- $resources := mergeOverwrite (deepCopy (.spec.resources | default dict)) (deepCopy ($s.resources | default dict)) }}
{{- if and $gpu (not $gpuPool) }}
{{- /* Profile cpu: a GPU limit would leave the pod pending on a cluster without GPUs. */}}
{{- $_ := unset ($resources.limits | default dict) "nvidia.com/gpu" }}
{{- end }}
{{- $nodeSelector := deepCopy ($s.nodeSelector | default dict) }}
{{- $tolerations := $s.tolerations | default list }}
{{- if $gpuPool }}
{{- $nodeSelector = mergeOverwrite $nodeSelector (deepCopy $root.Values.gpuNodePool.nodeSelector) }}
{{- $tolerations = concat $tolerations $root.Values.gpuNodePool.tolerations }}
{{- end }}
{{- /* CronJob names leave the controller 11 characters for its Job names (63 in all). */}}
{{- $max := ternary 52 63 (eq .kind "cronjob") }}
name: {{ .name }}
kind: {{ .kind }}
objectName: {{ include "plane-workers.objectName" (dict "root" $root "suffix" .name "max" $max) }}
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
Enabled consumers, by name: consumers.<name>.enabled where set, else consumerDefaults.enabled
and the registry's `enabled` (false for optional add-ons). Adds: topic and group (physical:
KAFKA_TOPIC_PREFIX + logical), partitions (consumers.<name>.partitions, else the registry's),
replicas (capped at the partitions), autoscaler ("hpa", "keda" or ""), maxReplicas (the
autoscaler's, capped too).
*/}}
{{- define "plane-workers.consumers" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- range $name, $spec := $workloads.consumers }}
{{- $override := get $root.Values.consumers $name | default dict }}
{{- $s := include "plane-workers.settings" (dict "defaults" $root.Values.consumerDefaults "override" $override) | fromYaml }}
{{- $enabled := $s.enabled }}
{{- if not (hasKey $override "enabled") }}
{{- $enabled = and $s.enabled (ne $spec.enabled false) }}
{{- end }}
{{- if $enabled }}
{{- $w := include "plane-workers.resolve" (dict "root" $root "name" $name "kind" "consumer" "spec" $spec "settings" $s) | fromYaml }}
{{- $partitions := $s.partitions | default $spec.partitions | int }}
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
{{- $_ = set $w "partitions" $partitions }}
{{- $_ = set $w "replicas" (min ($s.replicas | int) $partitions) }}
{{- $_ = set $w "autoscaler" $autoscaler }}
{{- $_ = set $w "maxReplicas" $max }}
{{ $name }}: {{ $w | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Enabled CronJobs, by name: cronjobs.<name>.enabled where set, else cronjobDefaults.enabled and the
registry's `enabled` (false for optional add-ons), as for consumers. Adds, each the registry's
unless cronjobs.<name> sets it: schedule, activeDeadlineSeconds, startingDeadlineSeconds,
backoffLimit; and timeZone (cronjobDefaults' unless cronjobs.<name> sets it). 0 is a valid
backoffLimit, hence the explicit nil checks.
*/}}
{{- define "plane-workers.cronjobs" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- range $name, $spec := $workloads.cronjobs }}
{{- $override := get $root.Values.cronjobs $name | default dict }}
{{- $s := include "plane-workers.settings" (dict "defaults" $root.Values.cronjobDefaults "override" $override) | fromYaml }}
{{- if $spec.manual }}
{{- /* Run by hand only: a template for `kubectl create job --from`, never scheduled. */}}
{{- $_ := set $s "suspend" true }}
{{- end }}
{{- $enabled := $s.enabled }}
{{- if not (hasKey $override "enabled") }}
{{- $enabled = and $s.enabled (ne $spec.enabled false) }}
{{- end }}
{{- if $enabled }}
{{- $w := include "plane-workers.resolve" (dict "root" $root "name" $name "kind" "cronjob" "spec" $spec "settings" $s) | fromYaml }}
{{- $_ := set $w "schedule" ($s.schedule | default $spec.schedule) }}
{{- $_ = set $w "activeDeadlineSeconds" ($s.activeDeadlineSeconds | default $spec.activeDeadlineSeconds | int) }}
{{- $_ = set $w "startingDeadlineSeconds" ($s.startingDeadlineSeconds | default $spec.startingDeadlineSeconds | int) }}
{{- $backoff := $spec.backoffLimit }}
{{- if not (kindIs "invalid" $s.backoffLimit) }}
{{- $backoff = $s.backoffLimit }}
{{- end }}
{{- $_ = set $w "backoffLimit" ($backoff | int) }}
{{- $_ = set $w "timeZone" ($s.timeZone | default "Etc/UTC") }}
{{ $name }}: {{ $w | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A hook Job (kind "hook"): what the hook's values say, over cronjobDefaults' placement (nodeSelector,
tolerations, affinity, podAnnotations, podLabels, priorityClassName, tmpSizeLimit), so hooks land
where the jobs do. Adds podActiveDeadlineSeconds: none (the Job's own deadline applies).
Call with (dict "root" $ "name" NAME "args" LIST "values" HOOK_VALUES).
*/}}
{{- define "plane-workers.hook" -}}
{{- $root := .root }}
{{- $placement := pick $root.Values.cronjobDefaults "nodeSelector" "tolerations" "affinity" "podAnnotations" "podLabels" "priorityClassName" "tmpSizeLimit" "topologySpreadConstraints" }}
{{- $s := mergeOverwrite (deepCopy $placement) (deepCopy (omit .values "enabled")) }}
{{- $spec := dict "args" .args "resources" dict "gpu" false }}
{{- include "plane-workers.resolve" (dict "root" $root "name" .name "kind" "hook" "spec" $spec "settings" $s) }}
{{- end }}

{{/*
Every topic the registry needs (workloads.yaml `topics`, keyed by logical name), with what the
values make of it: name (physical), kind (main, retry, dlq), partitions (a consumer's retry tiers
and DLQ follow its main topic: consumers.<name>.partitions), config (topics.config, then
topics.retryConfig / dlqConfig by kind; retry tiers and DLQs also get max.message.bytes = the
producer's limit, max(2 x EVENT_MAX_BYTES, 1 MiB), as `topics create` gives them).
*/}}
{{- define "plane-workers.topics" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- $partitions := dict }}
{{- range $name, $spec := $workloads.consumers }}
{{- $s := get $root.Values.consumers $name | default dict }}
{{- with $s.partitions }}
{{- $_ := set $partitions $spec.topic (. | int) }}
{{- end }}
{{- end }}
{{- $prefix := $root.Values.config.KAFKA_TOPIC_PREFIX | default "" }}
{{- $eventMax := $root.Values.config.EVENT_MAX_BYTES | default 1048576 | int64 }}
{{- $producerMax := max (mul 2 $eventMax) 1048576 }}
{{- $t := $root.Values.topics }}
{{- range $logical, $topic := $workloads.topics }}
{{- $config := deepCopy ($t.config | default dict) }}
{{- if ne $topic.kind "main" }}
{{- $_ := set $config "max.message.bytes" ($producerMax | toString) }}
{{- end }}
{{- if eq $topic.kind "retry" }}
{{- $config = mergeOverwrite $config (deepCopy ($t.retryConfig | default dict)) }}
{{- else if eq $topic.kind "dlq" }}
{{- $config = mergeOverwrite $config (deepCopy ($t.dlqConfig | default dict)) }}
{{- end }}
{{- $strings := dict }}
{{- range $key, $value := $config }}
{{- $_ := set $strings $key (include "plane-workers.text" $value) }}
{{- end }}
{{ $logical }}:
  name: {{ printf "%s%s" $prefix $logical | quote }}
  kind: {{ $topic.kind }}
  follows: {{ $topic.follows }}
  partitions: {{ get $partitions $topic.follows | default $topic.partitions | int }}
  config: {{ $strings | toJson }}
{{- end }}
{{- end }}

{{/*
Enabled deployments that are not Kafka consumers (workloads.yaml `deployments`: the Celery bridge),
by name: deployments.<name>.enabled, else the registry's `enabled` (false). consumerDefaults give
them probes, grace period, placement and resources, deployments.<name> goes over them; the pod is
resolved as kind "consumer" (long-running, health-file probes, metrics port). Adds replicas.
*/}}
{{- define "plane-workers.deployments" -}}
{{- $root := . }}
{{- $workloads := include "plane-workers.workloads" . | fromYaml }}
{{- range $name, $spec := $workloads.deployments }}
{{- $override := get ($root.Values.deployments | default dict) $name | default dict }}
{{- $enabled := $spec.enabled }}
{{- if hasKey $override "enabled" }}
{{- $enabled = $override.enabled }}
{{- end }}
{{- if $enabled }}
{{- $s := include "plane-workers.settings" (dict "defaults" $root.Values.consumerDefaults "override" $override) | fromYaml }}
{{- $w := include "plane-workers.resolve" (dict "root" $root "name" $name "kind" "consumer" "spec" $spec "settings" $s) | fromYaml }}
{{- $_ := set $w "replicas" ($s.replicas | default 1 | int) }}
{{ $name }}: {{ $w | toJson }}
{{- end }}
{{- end }}
{{- end }}
