"""The ``Deployment`` document Wacht's SDK loads first (``GET /deployment``), built from settings.

It says truthfully what this service supports: email + password and email codes, sign-up
with a verified email, several accounts per browser up to ``max_sign_ins``, organizations
and workspaces; nothing else (no phone, usernames, passkeys, social or second factors).
Nothing in it is secret: the publishable key only encodes our public origin.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from infrastructure.deployment import frontend_origin, publishable_key
from infrastructure.settings import Settings

DEPLOYMENT_ID = "1"  # one service, one deployment


class AuthField(BaseModel):
    """Whether a field or method is offered, and whether sign-up requires it."""

    enabled: bool
    required: bool


class PasskeySettings(BaseModel):
    """Passkeys: not supported."""

    enabled: bool = False
    prompt_registration_on_auth: bool = False
    allow_autofill: bool = False


class AuthFactorsEnabled(BaseModel):
    """The first factors a sign-in may use."""

    email_password: bool = True
    username_password: bool = False
    email_magic_link: bool = False
    email_otp: bool = True
    phone_otp: bool = False
    web3_wallet: bool = False
    backup_code: bool = False
    authenticator: bool = False


class VerificationPolicy(BaseModel):
    """What sign-up verifies: the email, by a one-time code."""

    phone_number: bool = False
    email: bool = True


class MultiSessionSupport(BaseModel):
    """Several accounts per browser; ``max_sessions_per_account`` 0 means no limit."""

    enabled: bool = True
    max_accounts_per_session: int
    max_sessions_per_account: int = 0


_ON, _OFF = AuthField(enabled=True, required=True), AuthField(enabled=False, required=False)


class AuthSettings(BaseModel):
    """How accounts sign up and sign in here."""

    id: str = DEPLOYMENT_ID
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: None = None
    email_address: AuthField = _ON
    phone_number: AuthField = _OFF
    username: AuthField = _OFF
    first_name: AuthField = _ON
    last_name: AuthField = _ON
    password: AuthField = _ON
    backup_code: AuthField = _OFF
    web3_wallet: AuthField = _OFF
    password_policy: AuthField = _ON  # at least 8 characters (WEAK_PASSWORD)
    magic_link: AuthField = _OFF
    passkey: PasskeySettings = PasskeySettings()
    auth_factors_enabled: AuthFactorsEnabled = AuthFactorsEnabled()
    verification_policy: VerificationPolicy = VerificationPolicy()
    second_factor_policy: Literal["none"] = "none"
    first_factor: Literal["email_password"] = "email_password"
    second_factor: None = None
    alternate_first_factors: list[Literal["email_otp"]] = ["email_otp"]
    alternate_second_factors: list[str] = []
    multi_session_support: MultiSessionSupport
    deployment_id: str = DEPLOYMENT_ID


class B2BSettings(BaseModel):
    """Organizations and workspaces from the directory; nothing is created through the API."""

    id: str = DEPLOYMENT_ID
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: None = None
    deployment_id: str = DEPLOYMENT_ID
    organizations_enabled: bool = True
    workspaces_enabled: bool = True
    ip_allowlist_per_org_enabled: bool = False
    allow_users_to_create_orgs: bool = False
    max_orgs_per_user: int = 0
    max_allowed_org_members: int = 0
    max_allowed_workspace_members: int = 0
    allow_org_deletion: bool = False
    allow_workspace_deletion: bool = False
    custom_org_role_enabled: bool = False
    limit_org_creation_per_user: bool = False
    limit_workspace_creation_per_org: bool = False
    org_creation_per_user_count: int = 0
    workspaces_per_org_count: int = 0
    custom_workspace_role_enabled: bool = False
    default_workspace_creator_role_id: str = ""
    default_workspace_member_role_id: str = ""
    default_org_creator_role_id: str = ""
    default_org_member_role_id: str = ""
    workspace_permissions: list[str]
    organization_permissions: list[str]
    ip_allowlist_per_workspace_enabled: bool = False
    enforce_mfa_per_org_enabled: bool = False
    enforce_mfa_per_workspace_enabled: bool = False
    enterprise_sso_enabled: bool = False


class CountryRestriction(BaseModel):
    """No country is restricted."""

    enabled: bool = False
    country_codes: list[str] = []


class DeploymentRestrictions(BaseModel):
    """Sign-up is open to any email; nothing is block- or allow-listed."""

    id: str = DEPLOYMENT_ID
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: None = None
    deployment_id: str = DEPLOYMENT_ID
    allowlist_enabled: bool = False
    blocklist_enabled: bool = False
    block_subaddresses: bool = False
    block_disposable_emails: bool = False
    block_voip_numbers: bool = False
    country_restrictions: CountryRestriction = CountryRestriction()
    banned_keywords: list[str] = []
    allowlisted_resources: list[str] = []
    blocklisted_resources: list[str] = []
    sign_up_mode: Literal["public"] = "public"


class UISettings(BaseModel):
    """The application's pages, on its origin; ``SESSION_LEDGER_UI_SETTINGS`` overrides any."""

    deployment_id: str = DEPLOYMENT_ID
    app_name: str
    privacy_policy_url: str = ""
    tos_page_url: str = ""
    sign_in_page_url: str
    sign_up_page_url: str
    waitlist_page_url: str = ""
    support_page_url: str = ""
    after_logo_click_url: str
    user_profile_url: str
    organization_profile_url: str
    create_organization_url: str = ""
    after_sign_out_one_page_url: str
    after_sign_out_all_page_url: str
    after_signup_redirect_url: str
    after_signin_redirect_url: str
    after_create_organization_redirect_url: str = ""
    favicon_image_url: str = ""
    default_user_profile_image_url: str = ""
    default_organization_profile_image_url: str = ""
    default_workspace_profile_image_url: str = ""
    use_initials_for_user_profile_image: bool = True
    use_initials_for_organization_profile_image: bool = True
    logo_image_url: str = ""
    signup_terms_statement: str = ""
    signup_terms_statement_shown: bool = False


class Deployment(BaseModel):
    """Wacht's ``Deployment``: what the SDK needs to know before it calls anything else."""

    id: str = DEPLOYMENT_ID
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: None = None
    maintenance_mode: bool = False
    backend_host: str
    frontend_host: str
    mail_from_host: str
    publishable_key: str
    b2b_settings: B2BSettings
    auth_settings: AuthSettings
    restrictions: DeploymentRestrictions = DeploymentRestrictions()
    social_connections: list[str] = []
    ui_settings: UISettings
    project_id: str = DEPLOYMENT_ID
    mode: Literal["production", "staging"]


def deployment_document(
    settings: Settings, organization_permissions: list[str], workspace_permissions: list[str]
) -> Deployment:
    """The deployment as settings describe it, with the directory's permissions."""
    app = frontend_origin(settings)
    pages = {
        "app_name": settings.app_name,
        "sign_in_page_url": f"{app}/sign-in",
        "sign_up_page_url": f"{app}/sign-up",
        "after_logo_click_url": f"{app}/",
        "user_profile_url": f"{app}/profile",
        "organization_profile_url": f"{app}/organization",
        "after_sign_out_one_page_url": f"{app}/sign-in",
        "after_sign_out_all_page_url": f"{app}/sign-in",
        "after_signup_redirect_url": f"{app}/",
        "after_signin_redirect_url": f"{app}/",
        **settings.ui_settings,
    }
    return Deployment(
        backend_host=settings.public_url,
        frontend_host=app,
        mail_from_host=settings.smtp_from.rpartition("@")[2],
        publishable_key=publishable_key(settings),
        b2b_settings=B2BSettings(
            organization_permissions=organization_permissions,
            workspace_permissions=workspace_permissions,
        ),
        auth_settings=AuthSettings(
            multi_session_support=MultiSessionSupport(
                max_accounts_per_session=settings.max_sign_ins
            )
        ),
        ui_settings=UISettings.model_validate(pages),
        mode=settings.deployment_mode,
    )
