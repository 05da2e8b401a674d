{{/*
A pre-install/pre-upgrade hook Job: Helm creates it before the release's other objects (weight
order), waits for it, and stops the install or upgrade if it fails. The command is idempotent, so
a retry, a second upgrade or a manual run changes nothing more. before-hook-creation keeps the
last run (and its logs) until the next install/upgrade replaces it.
Call with (dict "root" $ "w" RESOLVED_HOOK "weight" N "description" TEXT).
*/}}
{{- define "plane-workers.hookJob" -}}
{{- $w := .w }}
{{- $s := $w.settings -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $w.objectName }}
  labels:
    {{- include "plane-workers.labels" (dict "root" .root "component" $w.name) | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: {{ .weight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation
    plane-workers/description: {{ .description | quote }}
spec:
  backoffLimit: {{ $s.backoffLimit | int }}
  activeDeadlineSeconds: {{ $s.activeDeadlineSeconds | int }}
  ttlSecondsAfterFinished: {{ $s.ttlSecondsAfterFinished | int }}
  podFailurePolicy:
    {{- include "plane-workers.podFailurePolicy" .root | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "plane-workers.podLabels" (dict "root" .root "w" $w) | nindent 8 }}
      {{- with $s.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      {{- include "plane-workers.podSpec" (dict "root" .root "w" $w) | nindent 6 }}
{{- end }}
