from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from marketplace.audit import views as audit
from marketplace.web.views import (
    accounts,
    catalog,
    deployments,
    models,
    orgs,
    owners,
    predictions,
    trainings,
)

urlpatterns = [
    path("", catalog.explore, name="home"),
    path("search", catalog.search, name="search"),
    path("collections", catalog.collections, name="collections"),
    path("collections/<slug:slug>", catalog.collection, name="collection"),
    path("new", owners.model_create, name="model-create"),
    # Accounts
    path("account/signup", accounts.signup, name="signup"),
    path("account/login", auth_views.LoginView.as_view(), name="login"),
    path("account/logout", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "account/password-reset",
        auth_views.PasswordResetView.as_view(success_url=reverse_lazy("password_reset_done")),
        name="password_reset",
    ),
    path(
        "account/password-reset/sent",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "account/password-reset/<uidb64>/<token>",
        auth_views.PasswordResetConfirmView.as_view(
            success_url=reverse_lazy("password_reset_complete")
        ),
        name="password_reset_confirm",
    ),
    path(
        "account/password-reset/done",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("account/tokens", accounts.tokens, name="tokens"),
    path("account/tokens/<int:token_id>/revoke", accounts.token_revoke, name="token-revoke"),
    path("account/predictions", accounts.history, name="history"),
    # Organisations (under /account/: their own names are taken by profiles and models)
    path("account/organizations", orgs.organizations, name="organizations"),
    path("account/organizations/<str:org>/members", orgs.members, name="org-members"),
    path("account/organizations/<str:org>/invite", orgs.invite, name="org-invite"),
    path(
        "account/organizations/<str:org>/invitations/<int:invitation_id>/revoke",
        orgs.invitation_revoke,
        name="org-invitation-revoke",
    ),
    path(
        "account/organizations/<str:org>/members/<str:username>/role",
        orgs.member_role,
        name="org-member-role",
    ),
    path(
        "account/organizations/<str:org>/members/<str:username>/remove",
        orgs.member_remove,
        name="org-member-remove",
    ),
    path("account/invitations", orgs.inbox, name="invitations"),
    path("account/invitations/claim/<str:token>", orgs.invitation_claim, name="invitation-claim"),
    path(
        "account/invitations/<int:invitation_id>/<str:answer>",
        orgs.invitation_answer,
        name="invitation-answer",
    ),
    path("account/audit", audit.account_audit, name="audit"),
    path("avatars/<str:username>.svg", accounts.avatar, name="avatar"),
    # Predictions
    path("p/<str:prediction_id>", predictions.prediction_page, name="prediction"),
    path("p/<str:prediction_id>/json", predictions.prediction_json, name="prediction-json"),
    path("p/<str:prediction_id>/events", predictions.prediction_events, name="prediction-events"),
    path("p/<str:prediction_id>/cancel", predictions.cancel, name="prediction-cancel"),
    path("p/<str:prediction_id>/feature", predictions.feature, name="prediction-feature"),
    path(
        "p/<str:prediction_id>/webhooks/<str:message_id>/redeliver",
        predictions.redeliver_webhook,
        name="prediction-redeliver",
    ),
    # Deployments
    path("deployments", deployments.deployment_list, name="deployments"),
    path("deployments/new", deployments.deployment_create, name="deployment-create"),
    path("deployments/<str:owner>/<str:name>", deployments.deployment_page, name="deployment"),
    path(
        "deployments/<str:owner>/<str:name>/edit",
        deployments.deployment_edit,
        name="deployment-edit",
    ),
    path(
        "deployments/<str:owner>/<str:name>/status",
        deployments.deployment_status,
        name="deployment-status",
    ),
    path(
        "deployments/<str:owner>/<str:name>/prewarm",
        deployments.deployment_prewarm,
        name="deployment-prewarm",
    ),
    path(
        "deployments/<str:owner>/<str:name>/delete",
        deployments.deployment_delete,
        name="deployment-delete",
    ),
    # Profiles and models: last, since their first segment is anyone's name.
    path("<str:username>", catalog.profile, name="profile"),
    path("<str:owner>/<str:name>", models.model_page, name="model"),
    path("<str:owner>/<str:name>/run", models.run, name="model-run"),
    path("<str:owner>/<str:name>/train", trainings.model_train, name="model-train"),
    path("<str:owner>/<str:name>/api", models.model_api, name="model-api"),
    path("<str:owner>/<str:name>/versions", models.model_versions, name="model-versions"),
    path(
        "<str:owner>/<str:name>/versions/<str:version_id>/price",
        models.version_price,
        name="version-price",
    ),
    path("<str:owner>/<str:name>/examples", models.model_examples, name="model-examples"),
    path("<str:owner>/<str:name>/edit", owners.model_edit, name="model-edit"),
    path("<str:owner>/<str:name>/push", owners.model_push, name="model-push"),
    path("<str:owner>/<str:name>/transfer", orgs.model_transfer, name="model-transfer"),
]
