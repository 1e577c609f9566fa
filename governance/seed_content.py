"""What a fresh install starts with: approval policies and SOP checklist templates, as plain data.

The data migrations read this module, so it must stay importable without Django models. The checklists are the
Google SRE "launch coordination checklist" (architecture, capacity, failure modes, monitoring, security, rollout
planning, communication) re-read for a customer-service LLM chatbot on a marketplace: what can go wrong is a
prompt that breaks policy, leaks personal data, invents refund rules, traps a buyer with no way to a human agent,
or speaks the wrong language in a market.

Each item names a ``min_risk``: a template for a risk level holds every item whose ``min_risk`` is at or below it,
so a low-risk wording fix gets a short checklist and a critical model swap gets the full one.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTHORS = "Authors"
PROGRAM_MANAGERS = "Program managers"
REVIEWERS = "Reviewers"
ON_CALL = "On-call"
AUDITORS = "Auditors"

RISK_LEVELS = ("low", "medium", "high", "critical")
GATES = ("review", "rollout", "launch", "verification", "retro_review")


@dataclass(frozen=True)
class SeedItem:
    question: str
    guidance: str
    signer_group: str
    required: bool = True
    evidence_required: bool = False
    min_risk: str = "low"


@dataclass(frozen=True)
class SeedGate:
    gate: str
    name: str
    description: str
    items: tuple[SeedItem, ...]


@dataclass(frozen=True)
class SeedRequirement:
    group: str
    minimum_count: int


@dataclass(frozen=True)
class SeedPolicy:
    name: str
    risk_level: str  # "" = any risk level (the emergency policy)
    is_emergency: bool
    validity_days: int
    description: str
    requirements: tuple[SeedRequirement, ...]


# --- Approval policies ----------------------------------------------------------------------------------------

APPROVAL_POLICIES: tuple[SeedPolicy, ...] = (
    SeedPolicy(
        name="Low risk: program manager sign-off",
        risk_level="low",
        is_emergency=False,
        validity_days=30,
        description="Copy edits, typo fixes and knowledge-base refreshes that do not change what the bot may do.",
        requirements=(SeedRequirement(PROGRAM_MANAGERS, 1),),
    ),
    SeedPolicy(
        name="Medium risk: program manager and one reviewer",
        risk_level="medium",
        is_emergency=False,
        validity_days=21,
        description="Prompt or flow changes inside an existing intent, new answers grounded in the knowledge base.",
        requirements=(SeedRequirement(PROGRAM_MANAGERS, 1), SeedRequirement(REVIEWERS, 1)),
    ),
    SeedPolicy(
        name="High risk: program manager and two reviewers",
        risk_level="high",
        is_emergency=False,
        validity_days=14,
        description=(
            "New intents, new tools (refunds, order changes), new markets or languages, or a model parameter "
            "change: two domain reviewers (e.g. policy and QA) and a program manager."
        ),
        requirements=(SeedRequirement(PROGRAM_MANAGERS, 1), SeedRequirement(REVIEWERS, 2)),
    ),
    SeedPolicy(
        name="Critical risk: two program managers and two reviewers",
        risk_level="critical",
        is_emergency=False,
        validity_days=14,
        description=(
            "A model swap, money-moving tools without a human in the loop, or a change touching regulated "
            "topics (payments disputes, account security, minors)."
        ),
        requirements=(SeedRequirement(PROGRAM_MANAGERS, 2), SeedRequirement(REVIEWERS, 2)),
    ),
    SeedPolicy(
        name="Emergency: program manager and on-call",
        risk_level="",
        is_emergency=True,
        validity_days=3,
        description=(
            "Reduced policy for an emergency release (e.g. stopping the bot from quoting a wrong refund rule). "
            "The review checklist is skipped and a retro-review checklist is owed within 72 hours."
        ),
        requirements=(SeedRequirement(PROGRAM_MANAGERS, 1), SeedRequirement(ON_CALL, 1)),
    ),
)


# --- SOP checklist templates ----------------------------------------------------------------------------------

REVIEW = SeedGate(
    gate="review",
    name="Pre-approval review",
    description="Signed while the release is in review; the release cannot be approved until every required item "
    "is signed. Adapted from the architecture, security and dependency sections of the SRE launch checklist.",
    items=(
        SeedItem(
            question="Has the system prompt passed policy and compliance review?",
            guidance="Read the full prompt diff against the marketplace's customer-service policy: refund, return "
            "and payout rules are quoted, not paraphrased; the bot never promises outcomes an agent could not "
            "grant; legal disclaimers required in the release's markets are present. Link the review ticket.",
            signer_group=REVIEWERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Does the bot refuse to collect or reveal personal data it does not need?",
            guidance="Check that the prompt and tools never ask for full card numbers, passwords or government IDs, "
            "that order lookups are scoped to the authenticated buyer or seller, and that transcripts are "
            "redacted before logging. Run the PII probe set (addresses, phone numbers, e-mails of other users).",
            signer_group=REVIEWERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Has the safety red-team suite been run against this exact content hash?",
            guidance="Run the jailbreak, prompt-injection (via product titles and seller messages), abusive-user "
            "and self-harm suites. Attach the report; every 'fail' needs a fix or a written acceptance by policy.",
            signer_group=REVIEWERS,
            evidence_required=True,
            min_risk="medium",
        ),
        SeedItem(
            question="Are answers grounded in the pinned knowledge-base version and accurate?",
            guidance="Sample at least 50 golden questions per changed intent; answers must cite the knowledge-base "
            "article they rely on and match the policy in force. Record accuracy and hallucination rate; "
            "block on any invented fee, deadline or refund amount.",
            signer_group=REVIEWERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Can every conversation reach a human agent?",
            guidance="Verify the hand-off trigger (user asks for a person, two failed turns, negative sentiment, "
            "regulated topics) in each market, that the agent receives the transcript and context, and that the "
            "queue exists during the market's support hours.",
            signer_group=REVIEWERS,
        ),
        SeedItem(
            question="Are the tools the bot may call limited to what this scenario needs?",
            guidance="List each tool and its permissions. Money-moving or order-changing tools need amount limits, "
            "idempotency keys and a confirmation turn; read-only tools must not expose other users' data.",
            signer_group=REVIEWERS,
            min_risk="medium",
        ),
        SeedItem(
            question="Is the model and its parameters an approved configuration?",
            guidance="The model version is pinned (no floating 'latest' alias), temperature and max tokens are within "
            "the approved range, and the vendor's data-retention terms are accepted for these markets.",
            signer_group=REVIEWERS,
            min_risk="high",
        ),
        SeedItem(
            question="Do the release's markets and languages have reviewed content?",
            guidance="For each market: the prompt and flow were tested in its language(s) by a fluent reviewer, "
            "local consumer-law wording is used, currency and date formats are right, and unsupported "
            "languages are handed to an agent instead of machine-translated.",
            signer_group=REVIEWERS,
            evidence_required=True,
            min_risk="medium",
        ),
        SeedItem(
            question="Has a data-protection assessment been updated for this change?",
            guidance="Needed when the change adds a data category, a tool with access to personal data, a new "
            "market or a new model vendor. Link the DPIA entry; optional when none of these changed.",
            signer_group=REVIEWERS,
            required=False,
            evidence_required=True,
            min_risk="high",
        ),
        SeedItem(
            question="Is the business owner aware of the change and its expected effect?",
            guidance="The solution owner has read the change summary and the expected movement of CSAT, "
            "containment and escalation, and agrees with the rollout stages.",
            signer_group=PROGRAM_MANAGERS,
        ),
    ),
)

ROLLOUT = SeedGate(
    gate="rollout",
    name="Rollout readiness",
    description="Signed after approval and before the first stage starts. Adapted from the monitoring, failure "
    "modes, capacity and rollout-planning sections of the SRE launch checklist.",
    items=(
        SeedItem(
            question="Is the rollback plan written and rehearsed?",
            guidance="Rollback returns traffic to the previous verified release within minutes; state who can "
            "trigger it, how long it takes, and what happens to conversations in flight. For medium risk and "
            "above, rehearse it in staging and link the run.",
            signer_group=ON_CALL,
            evidence_required=True,
        ),
        SeedItem(
            question="Are guardrails configured for this release?",
            guidance="At least CSAT, containment, escalation and error-rate guardrails apply (release-specific or "
            "the risk level's defaults), with minimum sample sizes, the baseline (control arm or previous "
            "release) and the action on failure. Dry-run guardrails do not count.",
            signer_group=ON_CALL,
        ),
        SeedItem(
            question="Do dashboards and alerts cover the new behaviour?",
            guidance="The on-call dashboard shows the release's arms by market; alerts route to the on-call rotation "
            "that owns the solution; a new intent or tool has its own panel.",
            signer_group=ON_CALL,
            min_risk="medium",
        ),
        SeedItem(
            question="Can the human-agent queues absorb the expected escalations?",
            guidance="Estimate hand-offs per hour at each stage's traffic share from the staging escalation rate, "
            "and confirm with workforce management that the queues in each market can take them.",
            signer_group=PROGRAM_MANAGERS,
            min_risk="medium",
        ),
        SeedItem(
            question="Are model-provider quotas and latency budgets sufficient?",
            guidance="Tokens per minute and requests per minute at 100% traffic fit the provider quota with 30% "
            "headroom; p95 latency in staging is under the guardrail; the timeout fallback answer is set.",
            signer_group=ON_CALL,
            min_risk="high",
        ),
        SeedItem(
            question="Are the rollout stages and hold times appropriate for the risk?",
            guidance="Start small (1–5% in one market for high risk), hold long enough to reach each stage's minimum "
            "sample, and avoid peak sales events; check the freeze calendar for the planned dates.",
            signer_group=PROGRAM_MANAGERS,
        ),
        SeedItem(
            question="Have support leads and stakeholders been told when and where this goes live?",
            guidance="Notify support team leads in each market, trust & safety, and the solution's business owner: "
            "what changes, the stage dates, how agents report bad bot answers.",
            signer_group=PROGRAM_MANAGERS,
        ),
    ),
)

LAUNCH = SeedGate(
    gate="launch",
    name="Launch to 100%",
    description="Signed while the staged rollout runs; the final promotion to 100% waits for it. Adapted from "
    "the launch-day and external-dependency sections of the SRE launch checklist.",
    items=(
        SeedItem(
            question="Did every stage meet its guardrails with sufficient data?",
            guidance="Review the evaluations of each completed stage: no failing guardrail, no guardrail stuck on "
            "insufficient data in a market that is about to get full traffic.",
            signer_group=ON_CALL,
        ),
        SeedItem(
            question="Were incidents opened during the rollout resolved or accepted?",
            guidance="Each incident is resolved, or its owner wrote why launching with it open is safe.",
            signer_group=ON_CALL,
        ),
        SeedItem(
            question="Have transcripts from the rollout been sampled for quality?",
            guidance="Read at least 30 conversations per market from the treatment arm, including escalated and "
            "abandoned ones; note wrong answers, tone problems and missed hand-offs.",
            signer_group=REVIEWERS,
            evidence_required=True,
            min_risk="medium",
        ),
        SeedItem(
            question="Are agents' help-center macros and internal docs updated?",
            guidance="Agents who take over a conversation know what the bot now says and does, including new tools.",
            signer_group=PROGRAM_MANAGERS,
            required=False,
        ),
        SeedItem(
            question="Is the on-call rotation staffed for launch day?",
            guidance="Launch outside a holiday or a sales event; the primary and secondary on-call know the release "
            "and its rollback procedure.",
            signer_group=ON_CALL,
            min_risk="high",
        ),
    ),
)

VERIFICATION = SeedGate(
    gate="verification",
    name="Post-launch verification",
    description="Signed during the verification window; the release is verified only once it is complete.",
    items=(
        SeedItem(
            question="Did CSAT, containment and resolution hold against the baseline over the window?",
            guidance="Compare the full verification window with the previous verified release; attach the "
            "evaluation summary per market.",
            signer_group=PROGRAM_MANAGERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Is the escalation rate within plan, and were hand-offs handled well?",
            guidance="Agents received context with each hand-off; no queue breached its service level because of "
            "the bot.",
            signer_group=ON_CALL,
        ),
        SeedItem(
            question="Were customer complaints and agent reports about the bot reviewed?",
            guidance="Search complaint tags and agent 'bad bot answer' reports for the window; each confirmed "
            "problem has a follow-up ticket.",
            signer_group=REVIEWERS,
            min_risk="medium",
        ),
        SeedItem(
            question="Was a PII and safety spot-check run on live transcripts?",
            guidance="Sample live transcripts for leaked personal data, unsafe content and successful prompt "
            "injections; attach the findings.",
            signer_group=REVIEWERS,
            evidence_required=True,
            min_risk="high",
        ),
        SeedItem(
            question="Has the previous release's configuration been archived for rollback?",
            guidance="Keep the previous prompt, flow and model settings available until this release is verified, "
            "then archive them with the evidence of this checklist.",
            signer_group=ON_CALL,
            required=False,
        ),
    ),
)

RETRO_REVIEW = SeedGate(
    gate="retro_review",
    name="Emergency retro-review",
    description="Owed within 72 hours of an emergency release going live (or of a freeze-window override); "
    "the checks skipped under time pressure, done after the fact.",
    items=(
        SeedItem(
            question="Why was the emergency path necessary?",
            guidance="Describe the customer impact that justified skipping the review checklist and, if any, the "
            "freeze-window override; link the incident.",
            signer_group=PROGRAM_MANAGERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Has the emergency change passed policy and compliance review after the fact?",
            guidance="Do the review gate's policy, PII and knowledge-base checks on the live content hash; record "
            "anything that must be corrected in a follow-up release.",
            signer_group=REVIEWERS,
            evidence_required=True,
        ),
        SeedItem(
            question="Did the release behave as intended in production?",
            guidance="Check guardrail evaluations since go-live in every affected market, including escalation to "
            "human agents.",
            signer_group=ON_CALL,
        ),
        SeedItem(
            question="Are follow-up actions filed with owners and dates?",
            guidance="Root cause of the original problem, tests that would have caught it, and whether the "
            "emergency change should be replaced by a normally reviewed release.",
            signer_group=PROGRAM_MANAGERS,
        ),
        SeedItem(
            question="Were stakeholders informed of the emergency change?",
            guidance="Support leads, trust & safety and the solution owner know what changed and why.",
            signer_group=PROGRAM_MANAGERS,
            min_risk="medium",
        ),
    ),
)

CHECKLIST_GATES: tuple[SeedGate, ...] = (REVIEW, ROLLOUT, LAUNCH, VERIFICATION, RETRO_REVIEW)


def items_for_risk(gate: SeedGate, risk_level: str) -> list[SeedItem]:
    """The items of ``gate`` that apply at ``risk_level`` (every item whose ``min_risk`` is at or below it)."""
    rank = RISK_LEVELS.index(risk_level)
    return [item for item in gate.items if RISK_LEVELS.index(item.min_risk) <= rank]
