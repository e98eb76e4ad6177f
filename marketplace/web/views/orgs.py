"""Organisations on the site: create one, its members page, the invitations inbox, and moving a
model to another owner. The rules live in ``accounts.orgs``; these views show forms and errors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.accounts import orgs
from marketplace.accounts.models import Account, Invitation, Membership, User, signed_in
from marketplace.web.access import accounts_of, chosen_account, owned_model_for


def _org_for(user: User, username: str) -> Account:
    """An organisation the user belongs to (any role); 404 to everyone else."""
    account = Account.objects.filter(
        username__iexact=username, type=Account.Type.ORGANIZATION
    ).first()
    if account is None or not account.is_member(user):
        raise Http404("No such organization")
    return account


@login_required
def organizations(request: HttpRequest) -> HttpResponse:
    """The organisations one belongs to, and the form that creates one."""
    user = signed_in(request.user)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            account = orgs.organization_create(
                user, request.POST.get("username", ""), request.POST.get("name", "")
            )
        except orgs.OrgError as exc:
            errors[exc.field] = exc.message
        else:
            messages.success(request, f"Created {account.username}.")
            return redirect("org-members", org=account.username)
    memberships = (
        Membership.objects.filter(user=user).select_related("account").order_by("account__username")
    )
    return render(
        request,
        "web/organizations.html",
        {"memberships": memberships, "errors": errors, "values": request.POST},
        status=422 if errors else 200,
    )


@login_required
def members(request: HttpRequest, org: str) -> HttpResponse:
    user = signed_in(request.user)
    account = _org_for(user, org)
    return _members_page(request, account)


def _members_page(
    request: HttpRequest, account: Account, errors: dict[str, str] | None = None
) -> HttpResponse:
    user = signed_in(request.user)
    is_admin = account.can_admin(user)
    return render(
        request,
        "web/org_members.html",
        {
            "account": account,
            "memberships": account.memberships.select_related("user").order_by("user__username"),
            "invitations": account.invitations.filter(state=Invitation.State.PENDING)
            .select_related("user", "invited_by")
            .order_by("-created_at")
            if is_admin
            else [],
            "is_admin": is_admin,
            "roles": Membership.Role.choices,
            "errors": errors or {},
            "values": request.POST,
        },
        status=422 if errors else 200,
    )


def _act(request: HttpRequest, org: str, action, success: str) -> HttpResponse:  # type: ignore[no-untyped-def]
    """Run one members-page action; its refusal re-renders the page with the message."""
    user = signed_in(request.user)
    account = _org_for(user, org)
    try:
        action(account, user)
    except orgs.NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc
    except orgs.OrgError as exc:
        return _members_page(request, account, {exc.field: exc.message})
    messages.success(request, success)
    if not account.is_member(user):  # left, or removed oneself
        return redirect("organizations")
    return redirect("org-members", org=account.username)


def _member(username: str) -> User:
    member = User.objects.filter(username__iexact=username).first()
    if member is None:
        raise Http404("No such member")
    return member


@login_required
@require_POST
def invite(request: HttpRequest, org: str) -> HttpResponse:
    who = request.POST.get("who", "")
    return _act(
        request,
        org,
        lambda account, user: orgs.invite(account, user, who, request.POST.get("role", "")),
        f"Invited {who.strip()}.",
    )


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, org: str, invitation_id: int) -> HttpResponse:
    return _act(
        request,
        org,
        lambda account, user: orgs.invitation_revoke(account, user, invitation_id),
        "Invitation withdrawn.",
    )


@login_required
@require_POST
def member_role(request: HttpRequest, org: str, username: str) -> HttpResponse:
    member = _member(username)
    return _act(
        request,
        org,
        lambda account, user: orgs.role_change(account, user, member, request.POST.get("role", "")),
        f"{member.username}'s role changed.",
    )


@login_required
@require_POST
def member_remove(request: HttpRequest, org: str, username: str) -> HttpResponse:
    member = _member(username)
    return _act(
        request,
        org,
        lambda account, user: orgs.member_remove(account, user, member),
        f"{member.username} left."
        if member.pk == request.user.pk
        else f"Removed {member.username}.",
    )


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    user = signed_in(request.user)
    return render(request, "web/invitations.html", {"invitations": orgs.pending_for(user)})


@login_required
def invitation_claim(request: HttpRequest, token: str) -> HttpResponse:
    """The link of an emailed invitation: it joins the signed-in person's inbox."""
    try:
        orgs.invitation_claim(signed_in(request.user), token)
    except orgs.OrgError as exc:
        messages.error(request, exc.message)
    return redirect("invitations")


@login_required
@require_POST
def invitation_answer(request: HttpRequest, invitation_id: int, answer: str) -> HttpResponse:
    user = signed_in(request.user)
    if answer not in ("accept", "decline"):
        raise Http404("No such answer")
    try:
        invitation = orgs.invitation_answer(invitation_id, user, accept=answer == "accept")
    except orgs.OrgError as exc:
        raise Http404(exc.message) from exc
    if invitation.state == Invitation.State.ACCEPTED:
        messages.success(request, f"You joined {invitation.account.username}.")
        return redirect("org-members", org=invitation.account.username)
    messages.success(request, f"Declined the invitation to {invitation.account.username}.")
    return redirect("invitations")


@login_required
@require_POST
def model_transfer(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """Settings → "Transfer to": the model's URL becomes the new owner's."""
    user = signed_in(request.user)
    model = owned_model_for(user, owner, name)
    to = request.POST.get("to", "").strip()
    if not to:
        messages.error(request, "to: choose the account to move the model to")
        return redirect("model-edit", owner=model.owner.username, name=model.name)
    destination = chosen_account(user, to)
    try:
        model = orgs.model_transfer(model, user, destination)
    except orgs.OrgError as exc:
        messages.error(request, exc.message)
        return redirect("model-edit", owner=model.owner.username, name=model.name)
    messages.success(request, f"Moved to {model.full_name}.")
    return redirect("model", owner=model.owner.username, name=model.name)


def transfer_choices(user: User, model_owner: Account) -> list[Account]:
    return [a for a in accounts_of(user) if a.pk != model_owner.pk]
