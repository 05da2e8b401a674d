"""Plane's soft-deletable models: (app_label, model_name) -> table, as Celery's task names them.

`soft_delete_related_objects(app_label, model_name, instance_pk)` looks the model up in Django's
app registry; this is that registry restricted to models with a `deleted_at` column, read from the
`db_table` of every model class in apps/api/plane/db/models/ and apps/api/plane/license/models/ at
makeplane/plane@4ca6d6c7b807ad09bb571af2c43e85bf47c3ec6b (the commit plane_schema.sql was built
at). Account, Profile, Session and User have no `deleted_at`: Plane's task would crash on them
(no `all_objects`), here they are unknown models.
"""

from __future__ import annotations

MODEL_TABLES: dict[tuple[str, str], str] = {
    ("db", "analyticview"): "analytic_views",  # AnalyticView
    ("db", "apiactivitylog"): "api_activity_logs",  # APIActivityLog
    ("db", "apitoken"): "api_tokens",  # APIToken
    ("db", "commentreaction"): "comment_reactions",  # CommentReaction
    ("db", "cycle"): "cycles",  # Cycle
    ("db", "cycleissue"): "cycle_issues",  # CycleIssue
    ("db", "cycleuserproperties"): "cycle_user_properties",  # CycleUserProperties
    ("db", "deployboard"): "deploy_boards",  # DeployBoard
    ("db", "description"): "descriptions",  # Description
    ("db", "descriptionversion"): "description_versions",  # DescriptionVersion
    ("db", "device"): "devices",  # Device
    ("db", "devicesession"): "device_sessions",  # DeviceSession
    ("db", "draftissue"): "draft_issues",  # DraftIssue
    ("db", "draftissueassignee"): "draft_issue_assignees",  # DraftIssueAssignee
    ("db", "draftissuecycle"): "draft_issue_cycles",  # DraftIssueCycle
    ("db", "draftissuelabel"): "draft_issue_labels",  # DraftIssueLabel
    ("db", "draftissuemodule"): "draft_issue_modules",  # DraftIssueModule
    ("db", "emailnotificationlog"): "email_notification_logs",  # EmailNotificationLog
    ("db", "estimate"): "estimates",  # Estimate
    ("db", "estimatepoint"): "estimate_points",  # EstimatePoint
    ("db", "exporterhistory"): "exporters",  # ExporterHistory
    ("db", "fileasset"): "file_assets",  # FileAsset
    ("db", "githubcommentsync"): "github_comment_syncs",  # GithubCommentSync
    ("db", "githubissuesync"): "github_issue_syncs",  # GithubIssueSync
    ("db", "githubrepository"): "github_repositories",  # GithubRepository
    ("db", "githubrepositorysync"): "github_repository_syncs",  # GithubRepositorySync
    ("db", "importer"): "importers",  # Importer
    ("db", "intake"): "intakes",  # Intake
    ("db", "intakeissue"): "intake_issues",  # IntakeIssue
    ("db", "integration"): "integrations",  # Integration
    ("db", "issue"): "issues",  # Issue
    ("db", "issueactivity"): "issue_activities",  # IssueActivity
    ("db", "issueassignee"): "issue_assignees",  # IssueAssignee
    ("db", "issueattachment"): "issue_attachments",  # IssueAttachment
    ("db", "issueblocker"): "issue_blockers",  # IssueBlocker
    ("db", "issuecomment"): "issue_comments",  # IssueComment
    ("db", "issuedescriptionversion"): "issue_description_versions",  # IssueDescriptionVersion
    ("db", "issuelabel"): "issue_labels",  # IssueLabel
    ("db", "issuelink"): "issue_links",  # IssueLink
    ("db", "issuemention"): "issue_mentions",  # IssueMention
    ("db", "issuereaction"): "issue_reactions",  # IssueReaction
    ("db", "issuerelation"): "issue_relations",  # IssueRelation
    ("db", "issuesequence"): "issue_sequences",  # IssueSequence
    ("db", "issuesubscriber"): "issue_subscribers",  # IssueSubscriber
    ("db", "issuetype"): "issue_types",  # IssueType
    ("db", "issueversion"): "issue_versions",  # IssueVersion
    ("db", "issueview"): "issue_views",  # IssueView
    ("db", "issuevote"): "issue_votes",  # IssueVote
    ("db", "label"): "labels",  # Label
    ("db", "module"): "modules",  # Module
    ("db", "moduleissue"): "module_issues",  # ModuleIssue
    ("db", "modulelink"): "module_links",  # ModuleLink
    ("db", "modulemember"): "module_members",  # ModuleMember
    ("db", "moduleuserproperties"): "module_user_properties",  # ModuleUserProperties
    ("db", "notification"): "notifications",  # Notification
    ("db", "page"): "pages",  # Page
    ("db", "pagelabel"): "page_labels",  # PageLabel
    ("db", "pagelog"): "page_logs",  # PageLog
    ("db", "pageversion"): "page_versions",  # PageVersion
    ("db", "project"): "projects",  # Project
    ("db", "projectdeployboard"): "project_deploy_boards",  # ProjectDeployBoard
    ("db", "projectidentifier"): "project_identifiers",  # ProjectIdentifier
    ("db", "projectissuetype"): "project_issue_types",  # ProjectIssueType
    ("db", "projectmember"): "project_members",  # ProjectMember
    ("db", "projectmemberinvite"): "project_member_invites",  # ProjectMemberInvite
    ("db", "projectpage"): "project_pages",  # ProjectPage
    ("db", "projectpublicmember"): "project_public_members",  # ProjectPublicMember
    ("db", "projectuserproperty"): "project_user_properties",  # ProjectUserProperty
    ("db", "projectwebhook"): "project_webhooks",  # ProjectWebhook
    ("db", "slackprojectsync"): "slack_project_syncs",  # SlackProjectSync
    ("db", "socialloginconnection"): "social_login_connections",  # SocialLoginConnection
    ("db", "state"): "states",  # State
    ("db", "sticky"): "stickies",  # Sticky
    ("db", "team"): "teams",  # Team
    ("db", "userfavorite"): "user_favorites",  # UserFavorite
    ("db", "usernotificationpreference"): "user_notification_preferences",  # UserNotificationPreference
    ("db", "userrecentvisit"): "user_recent_visits",  # UserRecentVisit
    ("db", "webhook"): "webhooks",  # Webhook
    ("db", "webhooklog"): "webhook_logs",  # WebhookLog
    ("db", "workspace"): "workspaces",  # Workspace
    ("db", "workspacehomepreference"): "workspace_home_preferences",  # WorkspaceHomePreference
    ("db", "workspaceintegration"): "workspace_integrations",  # WorkspaceIntegration
    ("db", "workspacemember"): "workspace_members",  # WorkspaceMember
    ("db", "workspacememberinvite"): "workspace_member_invites",  # WorkspaceMemberInvite
    ("db", "workspacetheme"): "workspace_themes",  # WorkspaceTheme
    ("db", "workspaceuserlink"): "workspace_user_links",  # WorkspaceUserLink
    ("db", "workspaceuserpreference"): "workspace_user_preferences",  # WorkspaceUserPreference
    ("db", "workspaceuserproperties"): "workspace_user_properties",  # WorkspaceUserProperties
    ("license", "changelog"): "changelogs",  # ChangeLog
    ("license", "instance"): "instances",  # Instance
    ("license", "instanceadmin"): "instance_admins",  # InstanceAdmin
    ("license", "instanceconfiguration"): "instance_configurations",  # InstanceConfiguration
}
