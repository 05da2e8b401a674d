"""Django on_delete of every foreign key in Plane's schema, read from Plane's models.

Plane's FKs carry no ON DELETE in PostgreSQL; Django's collector does the cascades in Python. The
hard-delete job reproduces them from this table. Source:
makeplane/plane@5117ee1692e1ebb20900827f0efc6e067971ead5 apps/api/plane/db/models/ (issue.py).
The schema (plane_schema.sql) was built at makeplane/plane@4ca6d6c7b807ad09bb571af2c43e85bf47c3ec6b; the
code index does not hold that commit, so each other model file was read at its newest stored version:
  project.py a5e99547, workspace.py 5b6bf2ba, user.py 43615039, cycle.py 43615039, intake.py 43615039,
  module.py 96f95ac1, draft.py f00eafab, page.py a7eeed17, asset.py 63f07bd6, api.py a0dcb27b,
  analytic.py 1ce74a5b, base.py 4638ce19, notification.py 4638ce19, importer.py 4638ce19,
  integration/base.py 4638ce19, integration/github.py d5bad5ae, integration/slack.py cff5c0b6,
  session.py cff5c0b6, deploy_board.py b43b6ae5, device.py b43b6ae5, estimate.py b43b6ae5,
  issue_type.py b43b6ae5, description.py 7a42509f, exporter.py 7a42509f, favorite.py 84d0da9b,
  label.py 243f4a6a, sticky.py 243f4a6a, state.py ce95702d, recent_visit.py 6ab24234,
  social_connection.py e55a7814, view.py 992dac34, webhook.py 04ec99f7,
  plane/db/mixins.py 9ed0b7b3, plane/license/models/instance.py 4638ce19.
Tags in the comments: [audit] = created_by/updated_by from UserAuditModel (plane/db/mixins.py, SET_NULL);
[PBM] = ProjectBaseModel.project/.workspace (project.py); [WBM] = WorkspaceBaseModel.project (nullable)
/.workspace (workspace.py). Non-Plane tables: django.contrib.auth (Django 4.2) and django-celery-beat 2.6.0.
Auto-created ManyToMany through tables (auth_group_permissions, users_groups, users_user_permissions) are
CASCADE on both sides. IssueActivity.issue/.issue_comment are DO_NOTHING since migration
0108_alter_issueactivity_issue_comment: the FK stays enforced, so the referencing activities must be dealt
with before their issue/comment row can be deleted.
"""

from typing import Literal

OnDelete = Literal["CASCADE", "SET_NULL", "DO_NOTHING", "PROTECT", "SET_DEFAULT", "RESTRICT"]

ON_DELETE: dict[tuple[str, str], OnDelete] = {
    # table, column -> on_delete            (model.field)
    ("accounts", "user_id"): "CASCADE",  # Account.user
    ("analytic_views", "created_by_id"): "SET_NULL",  # AnalyticView.created_by [audit]
    ("analytic_views", "updated_by_id"): "SET_NULL",  # AnalyticView.updated_by [audit]
    ("analytic_views", "workspace_id"): "CASCADE",  # AnalyticView.workspace
    ("api_activity_logs", "created_by_id"): "SET_NULL",  # APIActivityLog.created_by [audit]
    ("api_activity_logs", "updated_by_id"): "SET_NULL",  # APIActivityLog.updated_by [audit]
    ("api_tokens", "created_by_id"): "SET_NULL",  # APIToken.created_by [audit]
    ("api_tokens", "updated_by_id"): "SET_NULL",  # APIToken.updated_by [audit]
    ("api_tokens", "user_id"): "CASCADE",  # APIToken.user
    ("api_tokens", "workspace_id"): "CASCADE",  # APIToken.workspace
    ("auth_group_permissions", "group_id"): "CASCADE",  # Group.permissions (auto M2M: group)
    ("auth_group_permissions", "permission_id"): "CASCADE",  # Group.permissions (auto M2M: permission)
    ("auth_permission", "content_type_id"): "CASCADE",  # Permission.content_type (django.contrib.auth)
    ("changelogs", "created_by_id"): "SET_NULL",  # ChangeLog.created_by [audit]
    ("changelogs", "updated_by_id"): "SET_NULL",  # ChangeLog.updated_by [audit]
    ("comment_reactions", "actor_id"): "CASCADE",  # CommentReaction.actor
    ("comment_reactions", "comment_id"): "CASCADE",  # CommentReaction.comment
    ("comment_reactions", "created_by_id"): "SET_NULL",  # CommentReaction.created_by [audit]
    ("comment_reactions", "project_id"): "CASCADE",  # CommentReaction.project [PBM]
    ("comment_reactions", "updated_by_id"): "SET_NULL",  # CommentReaction.updated_by [audit]
    ("comment_reactions", "workspace_id"): "CASCADE",  # CommentReaction.workspace [PBM]
    ("cycle_issues", "created_by_id"): "SET_NULL",  # CycleIssue.created_by [audit]
    ("cycle_issues", "cycle_id"): "CASCADE",  # CycleIssue.cycle
    ("cycle_issues", "issue_id"): "CASCADE",  # CycleIssue.issue
    ("cycle_issues", "project_id"): "CASCADE",  # CycleIssue.project [PBM]
    ("cycle_issues", "updated_by_id"): "SET_NULL",  # CycleIssue.updated_by [audit]
    ("cycle_issues", "workspace_id"): "CASCADE",  # CycleIssue.workspace [PBM]
    ("cycle_user_properties", "created_by_id"): "SET_NULL",  # CycleUserProperties.created_by [audit]
    ("cycle_user_properties", "cycle_id"): "CASCADE",  # CycleUserProperties.cycle
    ("cycle_user_properties", "project_id"): "CASCADE",  # CycleUserProperties.project [PBM]
    ("cycle_user_properties", "updated_by_id"): "SET_NULL",  # CycleUserProperties.updated_by [audit]
    ("cycle_user_properties", "user_id"): "CASCADE",  # CycleUserProperties.user
    ("cycle_user_properties", "workspace_id"): "CASCADE",  # CycleUserProperties.workspace [PBM]
    ("cycles", "created_by_id"): "SET_NULL",  # Cycle.created_by [audit]
    ("cycles", "owned_by_id"): "CASCADE",  # Cycle.owned_by
    ("cycles", "project_id"): "CASCADE",  # Cycle.project [PBM]
    ("cycles", "updated_by_id"): "SET_NULL",  # Cycle.updated_by [audit]
    ("cycles", "workspace_id"): "CASCADE",  # Cycle.workspace [PBM]
    ("deploy_boards", "created_by_id"): "SET_NULL",  # DeployBoard.created_by [audit]
    ("deploy_boards", "intake_id"): "SET_NULL",  # DeployBoard.intake
    ("deploy_boards", "project_id"): "CASCADE",  # DeployBoard.project [WBM]
    ("deploy_boards", "updated_by_id"): "SET_NULL",  # DeployBoard.updated_by [audit]
    ("deploy_boards", "workspace_id"): "CASCADE",  # DeployBoard.workspace [WBM]
    ("description_versions", "created_by_id"): "SET_NULL",  # DescriptionVersion.created_by [audit]
    ("description_versions", "description_id"): "CASCADE",  # DescriptionVersion.description
    ("description_versions", "project_id"): "CASCADE",  # DescriptionVersion.project [WBM]
    ("description_versions", "updated_by_id"): "SET_NULL",  # DescriptionVersion.updated_by [audit]
    ("description_versions", "workspace_id"): "CASCADE",  # DescriptionVersion.workspace [WBM]
    ("descriptions", "created_by_id"): "SET_NULL",  # Description.created_by [audit]
    ("descriptions", "project_id"): "CASCADE",  # Description.project [WBM]
    ("descriptions", "updated_by_id"): "SET_NULL",  # Description.updated_by [audit]
    ("descriptions", "workspace_id"): "CASCADE",  # Description.workspace [WBM]
    ("device_sessions", "created_by_id"): "SET_NULL",  # DeviceSession.created_by [audit]
    ("device_sessions", "device_id"): "CASCADE",  # DeviceSession.device
    ("device_sessions", "session_id"): "CASCADE",  # DeviceSession.session
    ("device_sessions", "updated_by_id"): "SET_NULL",  # DeviceSession.updated_by [audit]
    ("devices", "created_by_id"): "SET_NULL",  # Device.created_by [audit]
    ("devices", "updated_by_id"): "SET_NULL",  # Device.updated_by [audit]
    ("devices", "user_id"): "CASCADE",  # Device.user
    ("django_celery_beat_periodictask", "clocked_id"): "CASCADE",  # PeriodicTask.clocked (celery-beat)
    ("django_celery_beat_periodictask", "crontab_id"): "CASCADE",  # PeriodicTask.crontab (celery-beat)
    ("django_celery_beat_periodictask", "interval_id"): "CASCADE",  # PeriodicTask.interval (celery-beat)
    ("django_celery_beat_periodictask", "solar_id"): "CASCADE",  # PeriodicTask.solar (celery-beat)
    ("draft_issue_assignees", "assignee_id"): "CASCADE",  # DraftIssueAssignee.assignee
    ("draft_issue_assignees", "created_by_id"): "SET_NULL",  # DraftIssueAssignee.created_by [audit]
    ("draft_issue_assignees", "draft_issue_id"): "CASCADE",  # DraftIssueAssignee.draft_issue
    ("draft_issue_assignees", "project_id"): "CASCADE",  # DraftIssueAssignee.project [WBM]
    ("draft_issue_assignees", "updated_by_id"): "SET_NULL",  # DraftIssueAssignee.updated_by [audit]
    ("draft_issue_assignees", "workspace_id"): "CASCADE",  # DraftIssueAssignee.workspace [WBM]
    ("draft_issue_cycles", "created_by_id"): "SET_NULL",  # DraftIssueCycle.created_by [audit]
    ("draft_issue_cycles", "cycle_id"): "CASCADE",  # DraftIssueCycle.cycle
    ("draft_issue_cycles", "draft_issue_id"): "CASCADE",  # DraftIssueCycle.draft_issue
    ("draft_issue_cycles", "project_id"): "CASCADE",  # DraftIssueCycle.project [WBM]
    ("draft_issue_cycles", "updated_by_id"): "SET_NULL",  # DraftIssueCycle.updated_by [audit]
    ("draft_issue_cycles", "workspace_id"): "CASCADE",  # DraftIssueCycle.workspace [WBM]
    ("draft_issue_labels", "created_by_id"): "SET_NULL",  # DraftIssueLabel.created_by [audit]
    ("draft_issue_labels", "draft_issue_id"): "CASCADE",  # DraftIssueLabel.draft_issue
    ("draft_issue_labels", "label_id"): "CASCADE",  # DraftIssueLabel.label
    ("draft_issue_labels", "project_id"): "CASCADE",  # DraftIssueLabel.project [WBM]
    ("draft_issue_labels", "updated_by_id"): "SET_NULL",  # DraftIssueLabel.updated_by [audit]
    ("draft_issue_labels", "workspace_id"): "CASCADE",  # DraftIssueLabel.workspace [WBM]
    ("draft_issue_modules", "created_by_id"): "SET_NULL",  # DraftIssueModule.created_by [audit]
    ("draft_issue_modules", "draft_issue_id"): "CASCADE",  # DraftIssueModule.draft_issue
    ("draft_issue_modules", "module_id"): "CASCADE",  # DraftIssueModule.module
    ("draft_issue_modules", "project_id"): "CASCADE",  # DraftIssueModule.project [WBM]
    ("draft_issue_modules", "updated_by_id"): "SET_NULL",  # DraftIssueModule.updated_by [audit]
    ("draft_issue_modules", "workspace_id"): "CASCADE",  # DraftIssueModule.workspace [WBM]
    ("draft_issues", "created_by_id"): "SET_NULL",  # DraftIssue.created_by [audit]
    ("draft_issues", "estimate_point_id"): "SET_NULL",  # DraftIssue.estimate_point
    ("draft_issues", "parent_id"): "CASCADE",  # DraftIssue.parent
    ("draft_issues", "project_id"): "CASCADE",  # DraftIssue.project [WBM]
    ("draft_issues", "state_id"): "CASCADE",  # DraftIssue.state
    ("draft_issues", "type_id"): "SET_NULL",  # DraftIssue.type
    ("draft_issues", "updated_by_id"): "SET_NULL",  # DraftIssue.updated_by [audit]
    ("draft_issues", "workspace_id"): "CASCADE",  # DraftIssue.workspace [WBM]
    ("email_notification_logs", "created_by_id"): "SET_NULL",  # EmailNotificationLog.created_by [audit]
    ("email_notification_logs", "receiver_id"): "CASCADE",  # EmailNotificationLog.receiver
    ("email_notification_logs", "triggered_by_id"): "CASCADE",  # EmailNotificationLog.triggered_by
    ("email_notification_logs", "updated_by_id"): "SET_NULL",  # EmailNotificationLog.updated_by [audit]
    ("estimate_points", "created_by_id"): "SET_NULL",  # EstimatePoint.created_by [audit]
    ("estimate_points", "estimate_id"): "CASCADE",  # EstimatePoint.estimate
    ("estimate_points", "project_id"): "CASCADE",  # EstimatePoint.project [PBM]
    ("estimate_points", "updated_by_id"): "SET_NULL",  # EstimatePoint.updated_by [audit]
    ("estimate_points", "workspace_id"): "CASCADE",  # EstimatePoint.workspace [PBM]
    ("estimates", "created_by_id"): "SET_NULL",  # Estimate.created_by [audit]
    ("estimates", "project_id"): "CASCADE",  # Estimate.project [PBM]
    ("estimates", "updated_by_id"): "SET_NULL",  # Estimate.updated_by [audit]
    ("estimates", "workspace_id"): "CASCADE",  # Estimate.workspace [PBM]
    ("exporters", "created_by_id"): "SET_NULL",  # ExporterHistory.created_by [audit]
    ("exporters", "initiated_by_id"): "CASCADE",  # ExporterHistory.initiated_by
    ("exporters", "updated_by_id"): "SET_NULL",  # ExporterHistory.updated_by [audit]
    ("exporters", "workspace_id"): "CASCADE",  # ExporterHistory.workspace
    ("file_assets", "comment_id"): "CASCADE",  # FileAsset.comment
    ("file_assets", "created_by_id"): "SET_NULL",  # FileAsset.created_by [audit]
    ("file_assets", "draft_issue_id"): "CASCADE",  # FileAsset.draft_issue
    ("file_assets", "issue_id"): "CASCADE",  # FileAsset.issue
    ("file_assets", "page_id"): "CASCADE",  # FileAsset.page
    ("file_assets", "project_id"): "CASCADE",  # FileAsset.project
    ("file_assets", "updated_by_id"): "SET_NULL",  # FileAsset.updated_by [audit]
    ("file_assets", "user_id"): "CASCADE",  # FileAsset.user
    ("file_assets", "workspace_id"): "CASCADE",  # FileAsset.workspace
    ("github_comment_syncs", "comment_id"): "CASCADE",  # GithubCommentSync.comment
    ("github_comment_syncs", "created_by_id"): "SET_NULL",  # GithubCommentSync.created_by [audit]
    ("github_comment_syncs", "issue_sync_id"): "CASCADE",  # GithubCommentSync.issue_sync
    ("github_comment_syncs", "project_id"): "CASCADE",  # GithubCommentSync.project [PBM]
    ("github_comment_syncs", "updated_by_id"): "SET_NULL",  # GithubCommentSync.updated_by [audit]
    ("github_comment_syncs", "workspace_id"): "CASCADE",  # GithubCommentSync.workspace [PBM]
    ("github_issue_syncs", "created_by_id"): "SET_NULL",  # GithubIssueSync.created_by [audit]
    ("github_issue_syncs", "issue_id"): "CASCADE",  # GithubIssueSync.issue
    ("github_issue_syncs", "project_id"): "CASCADE",  # GithubIssueSync.project [PBM]
    ("github_issue_syncs", "repository_sync_id"): "CASCADE",  # GithubIssueSync.repository_sync
    ("github_issue_syncs", "updated_by_id"): "SET_NULL",  # GithubIssueSync.updated_by [audit]
    ("github_issue_syncs", "workspace_id"): "CASCADE",  # GithubIssueSync.workspace [PBM]
    ("github_repositories", "created_by_id"): "SET_NULL",  # GithubRepository.created_by [audit]
    ("github_repositories", "project_id"): "CASCADE",  # GithubRepository.project [PBM]
    ("github_repositories", "updated_by_id"): "SET_NULL",  # GithubRepository.updated_by [audit]
    ("github_repositories", "workspace_id"): "CASCADE",  # GithubRepository.workspace [PBM]
    ("github_repository_syncs", "actor_id"): "CASCADE",  # GithubRepositorySync.actor
    ("github_repository_syncs", "created_by_id"): "SET_NULL",  # GithubRepositorySync.created_by [audit]
    ("github_repository_syncs", "label_id"): "SET_NULL",  # GithubRepositorySync.label
    ("github_repository_syncs", "project_id"): "CASCADE",  # GithubRepositorySync.project [PBM]
    ("github_repository_syncs", "repository_id"): "CASCADE",  # GithubRepositorySync.repository (O2O)
    ("github_repository_syncs", "updated_by_id"): "SET_NULL",  # GithubRepositorySync.updated_by [audit]
    ("github_repository_syncs", "workspace_id"): "CASCADE",  # GithubRepositorySync.workspace [PBM]
    # GithubRepositorySync.workspace_integration
    ("github_repository_syncs", "workspace_integration_id"): "CASCADE",
    ("importers", "created_by_id"): "SET_NULL",  # Importer.created_by [audit]
    ("importers", "initiated_by_id"): "CASCADE",  # Importer.initiated_by
    ("importers", "project_id"): "CASCADE",  # Importer.project [PBM]
    ("importers", "token_id"): "CASCADE",  # Importer.token
    ("importers", "updated_by_id"): "SET_NULL",  # Importer.updated_by [audit]
    ("importers", "workspace_id"): "CASCADE",  # Importer.workspace [PBM]
    ("instance_admins", "created_by_id"): "SET_NULL",  # InstanceAdmin.created_by [audit]
    ("instance_admins", "instance_id"): "CASCADE",  # InstanceAdmin.instance
    ("instance_admins", "updated_by_id"): "SET_NULL",  # InstanceAdmin.updated_by [audit]
    ("instance_admins", "user_id"): "SET_NULL",  # InstanceAdmin.user
    ("instance_configurations", "created_by_id"): "SET_NULL",  # InstanceConfiguration.created_by [audit]
    ("instance_configurations", "updated_by_id"): "SET_NULL",  # InstanceConfiguration.updated_by [audit]
    ("instances", "created_by_id"): "SET_NULL",  # Instance.created_by [audit]
    ("instances", "updated_by_id"): "SET_NULL",  # Instance.updated_by [audit]
    ("intake_issues", "created_by_id"): "SET_NULL",  # IntakeIssue.created_by [audit]
    ("intake_issues", "duplicate_to_id"): "SET_NULL",  # IntakeIssue.duplicate_to
    ("intake_issues", "intake_id"): "CASCADE",  # IntakeIssue.intake
    ("intake_issues", "issue_id"): "CASCADE",  # IntakeIssue.issue
    ("intake_issues", "project_id"): "CASCADE",  # IntakeIssue.project [PBM]
    ("intake_issues", "updated_by_id"): "SET_NULL",  # IntakeIssue.updated_by [audit]
    ("intake_issues", "workspace_id"): "CASCADE",  # IntakeIssue.workspace [PBM]
    ("intakes", "created_by_id"): "SET_NULL",  # Intake.created_by [audit]
    ("intakes", "project_id"): "CASCADE",  # Intake.project [PBM]
    ("intakes", "updated_by_id"): "SET_NULL",  # Intake.updated_by [audit]
    ("intakes", "workspace_id"): "CASCADE",  # Intake.workspace [PBM]
    ("integrations", "created_by_id"): "SET_NULL",  # Integration.created_by [audit]
    ("integrations", "updated_by_id"): "SET_NULL",  # Integration.updated_by [audit]
    ("issue_activities", "actor_id"): "SET_NULL",  # IssueActivity.actor
    ("issue_activities", "created_by_id"): "SET_NULL",  # IssueActivity.created_by [audit]
    ("issue_activities", "issue_comment_id"): "DO_NOTHING",  # IssueActivity.issue_comment
    ("issue_activities", "issue_id"): "DO_NOTHING",  # IssueActivity.issue
    ("issue_activities", "project_id"): "CASCADE",  # IssueActivity.project [PBM]
    ("issue_activities", "updated_by_id"): "SET_NULL",  # IssueActivity.updated_by [audit]
    ("issue_activities", "workspace_id"): "CASCADE",  # IssueActivity.workspace [PBM]
    ("issue_assignees", "assignee_id"): "CASCADE",  # IssueAssignee.assignee
    ("issue_assignees", "created_by_id"): "SET_NULL",  # IssueAssignee.created_by [audit]
    ("issue_assignees", "issue_id"): "CASCADE",  # IssueAssignee.issue
    ("issue_assignees", "project_id"): "CASCADE",  # IssueAssignee.project [PBM]
    ("issue_assignees", "updated_by_id"): "SET_NULL",  # IssueAssignee.updated_by [audit]
    ("issue_assignees", "workspace_id"): "CASCADE",  # IssueAssignee.workspace [PBM]
    ("issue_attachments", "created_by_id"): "SET_NULL",  # IssueAttachment.created_by [audit]
    ("issue_attachments", "issue_id"): "CASCADE",  # IssueAttachment.issue
    ("issue_attachments", "project_id"): "CASCADE",  # IssueAttachment.project [PBM]
    ("issue_attachments", "updated_by_id"): "SET_NULL",  # IssueAttachment.updated_by [audit]
    ("issue_attachments", "workspace_id"): "CASCADE",  # IssueAttachment.workspace [PBM]
    ("issue_blockers", "block_id"): "CASCADE",  # IssueBlocker.block
    ("issue_blockers", "blocked_by_id"): "CASCADE",  # IssueBlocker.blocked_by
    ("issue_blockers", "created_by_id"): "SET_NULL",  # IssueBlocker.created_by [audit]
    ("issue_blockers", "project_id"): "CASCADE",  # IssueBlocker.project [PBM]
    ("issue_blockers", "updated_by_id"): "SET_NULL",  # IssueBlocker.updated_by [audit]
    ("issue_blockers", "workspace_id"): "CASCADE",  # IssueBlocker.workspace [PBM]
    ("issue_comments", "actor_id"): "CASCADE",  # IssueComment.actor
    ("issue_comments", "created_by_id"): "SET_NULL",  # IssueComment.created_by [audit]
    ("issue_comments", "description_id"): "CASCADE",  # IssueComment.description (O2O)
    ("issue_comments", "issue_id"): "CASCADE",  # IssueComment.issue
    ("issue_comments", "parent_id"): "CASCADE",  # IssueComment.parent
    ("issue_comments", "project_id"): "CASCADE",  # IssueComment.project [PBM]
    ("issue_comments", "updated_by_id"): "SET_NULL",  # IssueComment.updated_by [audit]
    ("issue_comments", "workspace_id"): "CASCADE",  # IssueComment.workspace [PBM]
    ("issue_description_versions", "created_by_id"): "SET_NULL",  # IssueDescriptionVersion.created_by [audit]
    ("issue_description_versions", "issue_id"): "CASCADE",  # IssueDescriptionVersion.issue
    ("issue_description_versions", "owned_by_id"): "CASCADE",  # IssueDescriptionVersion.owned_by
    ("issue_description_versions", "project_id"): "CASCADE",  # IssueDescriptionVersion.project [PBM]
    ("issue_description_versions", "updated_by_id"): "SET_NULL",  # IssueDescriptionVersion.updated_by [audit]
    ("issue_description_versions", "workspace_id"): "CASCADE",  # IssueDescriptionVersion.workspace [PBM]
    ("issue_labels", "created_by_id"): "SET_NULL",  # IssueLabel.created_by [audit]
    ("issue_labels", "issue_id"): "CASCADE",  # IssueLabel.issue
    ("issue_labels", "label_id"): "CASCADE",  # IssueLabel.label
    ("issue_labels", "project_id"): "CASCADE",  # IssueLabel.project [PBM]
    ("issue_labels", "updated_by_id"): "SET_NULL",  # IssueLabel.updated_by [audit]
    ("issue_labels", "workspace_id"): "CASCADE",  # IssueLabel.workspace [PBM]
    ("issue_links", "created_by_id"): "SET_NULL",  # IssueLink.created_by [audit]
    ("issue_links", "issue_id"): "CASCADE",  # IssueLink.issue
    ("issue_links", "project_id"): "CASCADE",  # IssueLink.project [PBM]
    ("issue_links", "updated_by_id"): "SET_NULL",  # IssueLink.updated_by [audit]
    ("issue_links", "workspace_id"): "CASCADE",  # IssueLink.workspace [PBM]
    ("issue_mentions", "created_by_id"): "SET_NULL",  # IssueMention.created_by [audit]
    ("issue_mentions", "issue_id"): "CASCADE",  # IssueMention.issue
    ("issue_mentions", "mention_id"): "CASCADE",  # IssueMention.mention
    ("issue_mentions", "project_id"): "CASCADE",  # IssueMention.project [PBM]
    ("issue_mentions", "updated_by_id"): "SET_NULL",  # IssueMention.updated_by [audit]
    ("issue_mentions", "workspace_id"): "CASCADE",  # IssueMention.workspace [PBM]
    ("issue_reactions", "actor_id"): "CASCADE",  # IssueReaction.actor
    ("issue_reactions", "created_by_id"): "SET_NULL",  # IssueReaction.created_by [audit]
    ("issue_reactions", "issue_id"): "CASCADE",  # IssueReaction.issue
    ("issue_reactions", "project_id"): "CASCADE",  # IssueReaction.project [PBM]
    ("issue_reactions", "updated_by_id"): "SET_NULL",  # IssueReaction.updated_by [audit]
    ("issue_reactions", "workspace_id"): "CASCADE",  # IssueReaction.workspace [PBM]
    ("issue_relations", "created_by_id"): "SET_NULL",  # IssueRelation.created_by [audit]
    ("issue_relations", "issue_id"): "CASCADE",  # IssueRelation.issue
    ("issue_relations", "project_id"): "CASCADE",  # IssueRelation.project [PBM]
    ("issue_relations", "related_issue_id"): "CASCADE",  # IssueRelation.related_issue
    ("issue_relations", "updated_by_id"): "SET_NULL",  # IssueRelation.updated_by [audit]
    ("issue_relations", "workspace_id"): "CASCADE",  # IssueRelation.workspace [PBM]
    ("issue_sequences", "created_by_id"): "SET_NULL",  # IssueSequence.created_by [audit]
    ("issue_sequences", "issue_id"): "SET_NULL",  # IssueSequence.issue
    ("issue_sequences", "project_id"): "CASCADE",  # IssueSequence.project [PBM]
    ("issue_sequences", "updated_by_id"): "SET_NULL",  # IssueSequence.updated_by [audit]
    ("issue_sequences", "workspace_id"): "CASCADE",  # IssueSequence.workspace [PBM]
    ("issue_subscribers", "created_by_id"): "SET_NULL",  # IssueSubscriber.created_by [audit]
    ("issue_subscribers", "issue_id"): "CASCADE",  # IssueSubscriber.issue
    ("issue_subscribers", "project_id"): "CASCADE",  # IssueSubscriber.project [PBM]
    ("issue_subscribers", "subscriber_id"): "CASCADE",  # IssueSubscriber.subscriber
    ("issue_subscribers", "updated_by_id"): "SET_NULL",  # IssueSubscriber.updated_by [audit]
    ("issue_subscribers", "workspace_id"): "CASCADE",  # IssueSubscriber.workspace [PBM]
    ("issue_types", "created_by_id"): "SET_NULL",  # IssueType.created_by [audit]
    ("issue_types", "updated_by_id"): "SET_NULL",  # IssueType.updated_by [audit]
    ("issue_types", "workspace_id"): "CASCADE",  # IssueType.workspace
    ("issue_versions", "activity_id"): "SET_NULL",  # IssueVersion.activity
    ("issue_versions", "created_by_id"): "SET_NULL",  # IssueVersion.created_by [audit]
    ("issue_versions", "issue_id"): "CASCADE",  # IssueVersion.issue
    ("issue_versions", "owned_by_id"): "CASCADE",  # IssueVersion.owned_by
    ("issue_versions", "project_id"): "CASCADE",  # IssueVersion.project [PBM]
    ("issue_versions", "updated_by_id"): "SET_NULL",  # IssueVersion.updated_by [audit]
    ("issue_versions", "workspace_id"): "CASCADE",  # IssueVersion.workspace [PBM]
    ("issue_views", "created_by_id"): "SET_NULL",  # IssueView.created_by [audit]
    ("issue_views", "owned_by_id"): "CASCADE",  # IssueView.owned_by
    ("issue_views", "project_id"): "CASCADE",  # IssueView.project [WBM]
    ("issue_views", "updated_by_id"): "SET_NULL",  # IssueView.updated_by [audit]
    ("issue_views", "workspace_id"): "CASCADE",  # IssueView.workspace [WBM]
    ("issue_votes", "actor_id"): "CASCADE",  # IssueVote.actor
    ("issue_votes", "created_by_id"): "SET_NULL",  # IssueVote.created_by [audit]
    ("issue_votes", "issue_id"): "CASCADE",  # IssueVote.issue
    ("issue_votes", "project_id"): "CASCADE",  # IssueVote.project [PBM]
    ("issue_votes", "updated_by_id"): "SET_NULL",  # IssueVote.updated_by [audit]
    ("issue_votes", "workspace_id"): "CASCADE",  # IssueVote.workspace [PBM]
    ("issues", "created_by_id"): "SET_NULL",  # Issue.created_by [audit]
    ("issues", "estimate_point_id"): "SET_NULL",  # Issue.estimate_point
    ("issues", "parent_id"): "CASCADE",  # Issue.parent (self)
    ("issues", "project_id"): "CASCADE",  # Issue.project [PBM]
    ("issues", "state_id"): "CASCADE",  # Issue.state
    ("issues", "type_id"): "SET_NULL",  # Issue.type
    ("issues", "updated_by_id"): "SET_NULL",  # Issue.updated_by [audit]
    ("issues", "workspace_id"): "CASCADE",  # Issue.workspace [PBM]
    ("labels", "created_by_id"): "SET_NULL",  # Label.created_by [audit]
    ("labels", "parent_id"): "CASCADE",  # Label.parent (self)
    ("labels", "project_id"): "CASCADE",  # Label.project [WBM]
    ("labels", "updated_by_id"): "SET_NULL",  # Label.updated_by [audit]
    ("labels", "workspace_id"): "CASCADE",  # Label.workspace [WBM]
    ("module_issues", "created_by_id"): "SET_NULL",  # ModuleIssue.created_by [audit]
    ("module_issues", "issue_id"): "CASCADE",  # ModuleIssue.issue
    ("module_issues", "module_id"): "CASCADE",  # ModuleIssue.module
    ("module_issues", "project_id"): "CASCADE",  # ModuleIssue.project [PBM]
    ("module_issues", "updated_by_id"): "SET_NULL",  # ModuleIssue.updated_by [audit]
    ("module_issues", "workspace_id"): "CASCADE",  # ModuleIssue.workspace [PBM]
    ("module_links", "created_by_id"): "SET_NULL",  # ModuleLink.created_by [audit]
    ("module_links", "module_id"): "CASCADE",  # ModuleLink.module
    ("module_links", "project_id"): "CASCADE",  # ModuleLink.project [PBM]
    ("module_links", "updated_by_id"): "SET_NULL",  # ModuleLink.updated_by [audit]
    ("module_links", "workspace_id"): "CASCADE",  # ModuleLink.workspace [PBM]
    ("module_members", "created_by_id"): "SET_NULL",  # ModuleMember.created_by [audit]
    ("module_members", "member_id"): "CASCADE",  # ModuleMember.member
    ("module_members", "module_id"): "CASCADE",  # ModuleMember.module
    ("module_members", "project_id"): "CASCADE",  # ModuleMember.project [PBM]
    ("module_members", "updated_by_id"): "SET_NULL",  # ModuleMember.updated_by [audit]
    ("module_members", "workspace_id"): "CASCADE",  # ModuleMember.workspace [PBM]
    ("module_user_properties", "created_by_id"): "SET_NULL",  # ModuleUserProperties.created_by [audit]
    ("module_user_properties", "module_id"): "CASCADE",  # ModuleUserProperties.module
    ("module_user_properties", "project_id"): "CASCADE",  # ModuleUserProperties.project [PBM]
    ("module_user_properties", "updated_by_id"): "SET_NULL",  # ModuleUserProperties.updated_by [audit]
    ("module_user_properties", "user_id"): "CASCADE",  # ModuleUserProperties.user
    ("module_user_properties", "workspace_id"): "CASCADE",  # ModuleUserProperties.workspace [PBM]
    ("modules", "created_by_id"): "SET_NULL",  # Module.created_by [audit]
    ("modules", "lead_id"): "SET_NULL",  # Module.lead
    ("modules", "project_id"): "CASCADE",  # Module.project [PBM]
    ("modules", "updated_by_id"): "SET_NULL",  # Module.updated_by [audit]
    ("modules", "workspace_id"): "CASCADE",  # Module.workspace [PBM]
    ("notifications", "created_by_id"): "SET_NULL",  # Notification.created_by [audit]
    ("notifications", "project_id"): "CASCADE",  # Notification.project
    ("notifications", "receiver_id"): "CASCADE",  # Notification.receiver
    ("notifications", "triggered_by_id"): "SET_NULL",  # Notification.triggered_by
    ("notifications", "updated_by_id"): "SET_NULL",  # Notification.updated_by [audit]
    ("notifications", "workspace_id"): "CASCADE",  # Notification.workspace
    ("page_labels", "created_by_id"): "SET_NULL",  # PageLabel.created_by [audit]
    ("page_labels", "label_id"): "CASCADE",  # PageLabel.label
    ("page_labels", "page_id"): "CASCADE",  # PageLabel.page
    ("page_labels", "updated_by_id"): "SET_NULL",  # PageLabel.updated_by [audit]
    ("page_labels", "workspace_id"): "CASCADE",  # PageLabel.workspace
    ("page_logs", "created_by_id"): "SET_NULL",  # PageLog.created_by [audit]
    ("page_logs", "page_id"): "CASCADE",  # PageLog.page
    ("page_logs", "updated_by_id"): "SET_NULL",  # PageLog.updated_by [audit]
    ("page_logs", "workspace_id"): "CASCADE",  # PageLog.workspace
    ("page_versions", "created_by_id"): "SET_NULL",  # PageVersion.created_by [audit]
    ("page_versions", "owned_by_id"): "CASCADE",  # PageVersion.owned_by
    ("page_versions", "page_id"): "CASCADE",  # PageVersion.page
    ("page_versions", "updated_by_id"): "SET_NULL",  # PageVersion.updated_by [audit]
    ("page_versions", "workspace_id"): "CASCADE",  # PageVersion.workspace
    ("pages", "created_by_id"): "SET_NULL",  # Page.created_by [audit]
    ("pages", "owned_by_id"): "CASCADE",  # Page.owned_by
    ("pages", "parent_id"): "CASCADE",  # Page.parent (self)
    ("pages", "updated_by_id"): "SET_NULL",  # Page.updated_by [audit]
    ("pages", "workspace_id"): "CASCADE",  # Page.workspace
    ("profiles", "user_id"): "CASCADE",  # Profile.user (O2O)
    ("project_deploy_boards", "created_by_id"): "SET_NULL",  # ProjectDeployBoard.created_by [audit]
    ("project_deploy_boards", "intake_id"): "SET_NULL",  # ProjectDeployBoard.intake
    ("project_deploy_boards", "project_id"): "CASCADE",  # ProjectDeployBoard.project [PBM]
    ("project_deploy_boards", "updated_by_id"): "SET_NULL",  # ProjectDeployBoard.updated_by [audit]
    ("project_deploy_boards", "workspace_id"): "CASCADE",  # ProjectDeployBoard.workspace [PBM]
    ("project_identifiers", "created_by_id"): "SET_NULL",  # ProjectIdentifier.created_by [audit]
    ("project_identifiers", "project_id"): "CASCADE",  # ProjectIdentifier.project (O2O)
    ("project_identifiers", "updated_by_id"): "SET_NULL",  # ProjectIdentifier.updated_by [audit]
    ("project_identifiers", "workspace_id"): "CASCADE",  # ProjectIdentifier.workspace
    ("project_issue_types", "created_by_id"): "SET_NULL",  # ProjectIssueType.created_by [audit]
    ("project_issue_types", "issue_type_id"): "CASCADE",  # ProjectIssueType.issue_type
    ("project_issue_types", "project_id"): "CASCADE",  # ProjectIssueType.project [PBM]
    ("project_issue_types", "updated_by_id"): "SET_NULL",  # ProjectIssueType.updated_by [audit]
    ("project_issue_types", "workspace_id"): "CASCADE",  # ProjectIssueType.workspace [PBM]
    ("project_member_invites", "created_by_id"): "SET_NULL",  # ProjectMemberInvite.created_by [audit]
    ("project_member_invites", "project_id"): "CASCADE",  # ProjectMemberInvite.project [PBM]
    ("project_member_invites", "updated_by_id"): "SET_NULL",  # ProjectMemberInvite.updated_by [audit]
    ("project_member_invites", "workspace_id"): "CASCADE",  # ProjectMemberInvite.workspace [PBM]
    ("project_members", "created_by_id"): "SET_NULL",  # ProjectMember.created_by [audit]
    ("project_members", "member_id"): "CASCADE",  # ProjectMember.member
    ("project_members", "project_id"): "CASCADE",  # ProjectMember.project [PBM]
    ("project_members", "updated_by_id"): "SET_NULL",  # ProjectMember.updated_by [audit]
    ("project_members", "workspace_id"): "CASCADE",  # ProjectMember.workspace [PBM]
    ("project_pages", "created_by_id"): "SET_NULL",  # ProjectPage.created_by [audit]
    ("project_pages", "page_id"): "CASCADE",  # ProjectPage.page
    ("project_pages", "project_id"): "CASCADE",  # ProjectPage.project
    ("project_pages", "updated_by_id"): "SET_NULL",  # ProjectPage.updated_by [audit]
    ("project_pages", "workspace_id"): "CASCADE",  # ProjectPage.workspace
    ("project_public_members", "created_by_id"): "SET_NULL",  # ProjectPublicMember.created_by [audit]
    ("project_public_members", "member_id"): "CASCADE",  # ProjectPublicMember.member
    ("project_public_members", "project_id"): "CASCADE",  # ProjectPublicMember.project [PBM]
    ("project_public_members", "updated_by_id"): "SET_NULL",  # ProjectPublicMember.updated_by [audit]
    ("project_public_members", "workspace_id"): "CASCADE",  # ProjectPublicMember.workspace [PBM]
    ("project_user_properties", "created_by_id"): "SET_NULL",  # ProjectUserProperty.created_by [audit]
    ("project_user_properties", "project_id"): "CASCADE",  # ProjectUserProperty.project [PBM]
    ("project_user_properties", "updated_by_id"): "SET_NULL",  # ProjectUserProperty.updated_by [audit]
    ("project_user_properties", "user_id"): "CASCADE",  # ProjectUserProperty.user
    ("project_user_properties", "workspace_id"): "CASCADE",  # ProjectUserProperty.workspace [PBM]
    ("project_webhooks", "created_by_id"): "SET_NULL",  # ProjectWebhook.created_by [audit]
    ("project_webhooks", "project_id"): "CASCADE",  # ProjectWebhook.project [PBM]
    ("project_webhooks", "updated_by_id"): "SET_NULL",  # ProjectWebhook.updated_by [audit]
    ("project_webhooks", "webhook_id"): "CASCADE",  # ProjectWebhook.webhook
    ("project_webhooks", "workspace_id"): "CASCADE",  # ProjectWebhook.workspace [PBM]
    ("projects", "cover_image_asset_id"): "SET_NULL",  # Project.cover_image_asset
    ("projects", "created_by_id"): "SET_NULL",  # Project.created_by [audit]
    ("projects", "default_assignee_id"): "CASCADE",  # Project.default_assignee
    ("projects", "default_state_id"): "SET_NULL",  # Project.default_state
    ("projects", "estimate_id"): "SET_NULL",  # Project.estimate
    ("projects", "project_lead_id"): "CASCADE",  # Project.project_lead
    ("projects", "updated_by_id"): "SET_NULL",  # Project.updated_by [audit]
    ("projects", "workspace_id"): "CASCADE",  # Project.workspace
    ("slack_project_syncs", "created_by_id"): "SET_NULL",  # SlackProjectSync.created_by [audit]
    ("slack_project_syncs", "project_id"): "CASCADE",  # SlackProjectSync.project [PBM]
    ("slack_project_syncs", "updated_by_id"): "SET_NULL",  # SlackProjectSync.updated_by [audit]
    ("slack_project_syncs", "workspace_id"): "CASCADE",  # SlackProjectSync.workspace [PBM]
    ("slack_project_syncs", "workspace_integration_id"): "CASCADE",  # SlackProjectSync.workspace_integration
    ("social_login_connections", "created_by_id"): "SET_NULL",  # SocialLoginConnection.created_by [audit]
    ("social_login_connections", "updated_by_id"): "SET_NULL",  # SocialLoginConnection.updated_by [audit]
    ("social_login_connections", "user_id"): "CASCADE",  # SocialLoginConnection.user
    ("states", "created_by_id"): "SET_NULL",  # State.created_by [audit]
    ("states", "project_id"): "CASCADE",  # State.project [PBM]
    ("states", "updated_by_id"): "SET_NULL",  # State.updated_by [audit]
    ("states", "workspace_id"): "CASCADE",  # State.workspace [PBM]
    ("stickies", "created_by_id"): "SET_NULL",  # Sticky.created_by [audit]
    ("stickies", "owner_id"): "CASCADE",  # Sticky.owner
    ("stickies", "updated_by_id"): "SET_NULL",  # Sticky.updated_by [audit]
    ("stickies", "workspace_id"): "CASCADE",  # Sticky.workspace
    ("teams", "created_by_id"): "SET_NULL",  # Team.created_by [audit]
    ("teams", "updated_by_id"): "SET_NULL",  # Team.updated_by [audit]
    ("teams", "workspace_id"): "CASCADE",  # Team.workspace
    ("user_favorites", "created_by_id"): "SET_NULL",  # UserFavorite.created_by [audit]
    ("user_favorites", "parent_id"): "CASCADE",  # UserFavorite.parent (self)
    ("user_favorites", "project_id"): "CASCADE",  # UserFavorite.project [WBM]
    ("user_favorites", "updated_by_id"): "SET_NULL",  # UserFavorite.updated_by [audit]
    ("user_favorites", "user_id"): "CASCADE",  # UserFavorite.user
    ("user_favorites", "workspace_id"): "CASCADE",  # UserFavorite.workspace [WBM]
    # UserNotificationPreference.created_by [audit]
    ("user_notification_preferences", "created_by_id"): "SET_NULL",
    ("user_notification_preferences", "project_id"): "CASCADE",  # UserNotificationPreference.project
    # UserNotificationPreference.updated_by [audit]
    ("user_notification_preferences", "updated_by_id"): "SET_NULL",
    ("user_notification_preferences", "user_id"): "CASCADE",  # UserNotificationPreference.user
    ("user_notification_preferences", "workspace_id"): "CASCADE",  # UserNotificationPreference.workspace
    ("user_recent_visits", "created_by_id"): "SET_NULL",  # UserRecentVisit.created_by [audit]
    ("user_recent_visits", "project_id"): "CASCADE",  # UserRecentVisit.project [WBM]
    ("user_recent_visits", "updated_by_id"): "SET_NULL",  # UserRecentVisit.updated_by [audit]
    ("user_recent_visits", "user_id"): "CASCADE",  # UserRecentVisit.user
    ("user_recent_visits", "workspace_id"): "CASCADE",  # UserRecentVisit.workspace [WBM]
    ("users", "avatar_asset_id"): "SET_NULL",  # User.avatar_asset
    ("users", "cover_image_asset_id"): "SET_NULL",  # User.cover_image_asset
    ("users_groups", "group_id"): "CASCADE",  # User.groups (auto M2M: group)
    ("users_groups", "user_id"): "CASCADE",  # User.groups (auto M2M: user)
    ("users_user_permissions", "permission_id"): "CASCADE",  # User.user_permissions (auto M2M: permission)
    ("users_user_permissions", "user_id"): "CASCADE",  # User.user_permissions (auto M2M: user)
    ("webhook_logs", "created_by_id"): "SET_NULL",  # WebhookLog.created_by [audit]
    ("webhook_logs", "updated_by_id"): "SET_NULL",  # WebhookLog.updated_by [audit]
    ("webhook_logs", "workspace_id"): "CASCADE",  # WebhookLog.workspace
    ("webhooks", "created_by_id"): "SET_NULL",  # Webhook.created_by [audit]
    ("webhooks", "updated_by_id"): "SET_NULL",  # Webhook.updated_by [audit]
    ("webhooks", "workspace_id"): "CASCADE",  # Webhook.workspace
    ("workspace_home_preferences", "created_by_id"): "SET_NULL",  # WorkspaceHomePreference.created_by [audit]
    ("workspace_home_preferences", "updated_by_id"): "SET_NULL",  # WorkspaceHomePreference.updated_by [audit]
    ("workspace_home_preferences", "user_id"): "CASCADE",  # WorkspaceHomePreference.user
    ("workspace_home_preferences", "workspace_id"): "CASCADE",  # WorkspaceHomePreference.workspace
    ("workspace_integrations", "actor_id"): "CASCADE",  # WorkspaceIntegration.actor
    ("workspace_integrations", "api_token_id"): "CASCADE",  # WorkspaceIntegration.api_token
    ("workspace_integrations", "created_by_id"): "SET_NULL",  # WorkspaceIntegration.created_by [audit]
    ("workspace_integrations", "integration_id"): "CASCADE",  # WorkspaceIntegration.integration
    ("workspace_integrations", "updated_by_id"): "SET_NULL",  # WorkspaceIntegration.updated_by [audit]
    ("workspace_integrations", "workspace_id"): "CASCADE",  # WorkspaceIntegration.workspace
    ("workspace_member_invites", "created_by_id"): "SET_NULL",  # WorkspaceMemberInvite.created_by [audit]
    ("workspace_member_invites", "updated_by_id"): "SET_NULL",  # WorkspaceMemberInvite.updated_by [audit]
    ("workspace_member_invites", "workspace_id"): "CASCADE",  # WorkspaceMemberInvite.workspace
    ("workspace_members", "created_by_id"): "SET_NULL",  # WorkspaceMember.created_by [audit]
    ("workspace_members", "member_id"): "CASCADE",  # WorkspaceMember.member
    ("workspace_members", "updated_by_id"): "SET_NULL",  # WorkspaceMember.updated_by [audit]
    ("workspace_members", "workspace_id"): "CASCADE",  # WorkspaceMember.workspace
    ("workspace_themes", "actor_id"): "CASCADE",  # WorkspaceTheme.actor
    ("workspace_themes", "created_by_id"): "SET_NULL",  # WorkspaceTheme.created_by [audit]
    ("workspace_themes", "updated_by_id"): "SET_NULL",  # WorkspaceTheme.updated_by [audit]
    ("workspace_themes", "workspace_id"): "CASCADE",  # WorkspaceTheme.workspace
    ("workspace_user_links", "created_by_id"): "SET_NULL",  # WorkspaceUserLink.created_by [audit]
    ("workspace_user_links", "owner_id"): "CASCADE",  # WorkspaceUserLink.owner
    ("workspace_user_links", "project_id"): "CASCADE",  # WorkspaceUserLink.project [WBM]
    ("workspace_user_links", "updated_by_id"): "SET_NULL",  # WorkspaceUserLink.updated_by [audit]
    ("workspace_user_links", "workspace_id"): "CASCADE",  # WorkspaceUserLink.workspace [WBM]
    ("workspace_user_preferences", "created_by_id"): "SET_NULL",  # WorkspaceUserPreference.created_by [audit]
    ("workspace_user_preferences", "updated_by_id"): "SET_NULL",  # WorkspaceUserPreference.updated_by [audit]
    ("workspace_user_preferences", "user_id"): "CASCADE",  # WorkspaceUserPreference.user
    ("workspace_user_preferences", "workspace_id"): "CASCADE",  # WorkspaceUserPreference.workspace
    ("workspace_user_properties", "created_by_id"): "SET_NULL",  # WorkspaceUserProperties.created_by [audit]
    ("workspace_user_properties", "updated_by_id"): "SET_NULL",  # WorkspaceUserProperties.updated_by [audit]
    ("workspace_user_properties", "user_id"): "CASCADE",  # WorkspaceUserProperties.user
    ("workspace_user_properties", "workspace_id"): "CASCADE",  # WorkspaceUserProperties.workspace
    ("workspaces", "created_by_id"): "SET_NULL",  # Workspace.created_by [audit]
    ("workspaces", "logo_asset_id"): "SET_NULL",  # Workspace.logo_asset
    ("workspaces", "owner_id"): "CASCADE",  # Workspace.owner
    ("workspaces", "updated_by_id"): "SET_NULL",  # Workspace.updated_by [audit]
}
