"""`card:`, `transparency:` and `review:`: what only people can write, and who may review and approve."""

from __future__ import annotations

from pydantic import Field

from civicml.config.base import Strict as _Strict


class CardConfig(_Strict):
    """Text for the model card that only people can write."""

    # No defaults about a use the user did not describe: an unset field is shown as missing on the card.
    title: str | None = Field(None, description="default: the project's name")
    owner: str | None = None
    contact: str | None = Field(None, description="where to report a problem with the model, e.g. an email")
    intended_use: str | None = Field(None, description="what the model is for and who acts on its output")
    out_of_scope: str | None = Field(None, description="uses the model must not be put to")
    limitations: str | None = Field(None, description="data, population and period it was not validated for")
    ethical_considerations: str | None = None

    def missing(self) -> list[str]:
        """The `card.*` keys a reviewer needs that nobody wrote."""
        return [k for k in ("owner", "intended_use", "limitations") if not (getattr(self, k) or "").strip()]


class TransparencyConfig(_Strict):
    """What only people know, for the UK Algorithmic Transparency Recording Standard (ATRS v3) record.

    Each key is the ATRS v3 attribute of the same name. Nothing here is ever invented: a key left
    empty is shown in the record as "not filled in", naming this key. Facts the system knows (model,
    data, metrics, fairness, gate, approvals) come from the version's lineage instead.
    """

    organisation_name: str | None = Field(None, description="0.12 / 2.1.1, e.g. 'Department for Work and Pensions'")
    organisation_type: str | None = Field(None, description="0.3, e.g. 'Ministerial department'")
    function: str | None = Field(None, description="0.4, e.g. 'Benefits and welfare'")
    region: str | None = Field(None, description="0.14, e.g. 'England'")
    phase: str | None = Field(None, description="0.13 / 2.4.1.2: 'Pre-deployment', 'Beta/Pilot', 'Production'...")
    one_sentence_description: str | None = Field(None, description="0.15: the record's subheading")
    description: str | None = Field(None, description="1.2: plain-language summary (how and why the tool is used)")
    website_url: str | None = Field(None, description="1.3: page with more information")
    contact_email: str | None = Field(None, description="1.4: a team address, not a person's")
    team: str | None = Field(None, description="2.1.2")
    senior_responsible_owner: str | None = Field(None, description="2.1.3: name and role title")
    external_supplier_involvement: str | None = Field(None, description="2.1.4: 'No', or 'Yes' with 2.1.4.x")
    external_supplier: str | None = None
    companies_house_number: str | None = None
    external_supplier_role: str | None = None
    procurement_procedure_type: str | None = None
    data_access_terms: str | None = None
    scope: str | None = Field(None, description="2.2.2: purpose and the scenarios it is designed for")
    benefit: str | None = Field(None, description="2.2.3")
    previous_process: str | None = Field(None, description="2.2.4: how decisions were made before")
    alternatives_considered: str | None = Field(None, description="2.2.5")
    process_integration: str | None = Field(None, description="2.3.1: where the output enters the decision")
    provided_information: str | None = Field(None, description="2.3.2: what the decision maker sees")
    frequency_and_scale_of_usage: str | None = Field(None, description="2.3.3")
    human_decisions_and_review: str | None = Field(None, description="2.3.4: decisions people take")
    required_training: str | None = Field(None, description="2.3.5")
    appeals_and_review: str | None = Field(None, description="2.3.6: how the public can appeal")
    system_architecture: str | None = Field(None, description="2.4.1.1")
    maintenance: str | None = Field(None, description="2.4.1.3: review and retraining schedule")
    data_description: str | None = Field(None, description="2.4.3.3")
    data_modality: str | None = Field(None, description="2.4.3.2, e.g. 'Tabular'")
    source_data_url: str | None = Field(None, description="2.4.3.7")
    data_collection: str | None = Field(None, description="2.4.3.8: original purpose of collection")
    data_sharing_agreements: str | None = Field(None, description="2.4.3.10")
    data_access_and_storage: str | None = Field(None, description="2.4.3.11")
    impact_assessment: str | None = Field(None, description="2.5.1: DPIA, EIA... with dates")
    risks_and_mitigations: str | None = Field(None, description="2.5.2: risks people identified")


class ReviewConfig(_Strict):
    """The reviewer console (`civicml review`): who may see and decide what.

    Roles, lowest first: `viewer` reads everything; `reviewer` may also reject a pending version;
    `approver` may approve or reject. An entry is a user name (`alice@example.gov.uk`) or a group
    (`group:model-approvers`); `*` means everyone who signed in. A person's role is the highest
    that lists them; someone listed nowhere is refused.
    """

    behind_gateway: bool = Field(
        False,
        description="trust the user header set by the Kubeflow gateway (only when nothing else can reach the "
        "console); otherwise people sign in with a name and the token printed at start-up",
    )
    user_header: str = Field("kubeflow-userid", min_length=1)
    groups_header: str | None = Field("kubeflow-groups", description="comma-separated groups; None ignores groups")
    user_prefix: str = Field("", description="prefix the gateway puts before the user name (removed), e.g. 'accounts:'")
    viewers: list[str] = Field(default_factory=lambda: ["*"])
    reviewers: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    session_minutes: int = Field(30, ge=1, le=24 * 60, description="a session expires this long after sign-in")
    path_prefix: str = Field(
        "",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="URL prefix the gateway serves the console under, e.g. /civicml-review ('' = the root)",
    )
