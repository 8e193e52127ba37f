"""Recovery policy: what faultcat may do about a failure without a human.

Defaults per root-cause category, overridden (in this order, later wins) by the ``[faultcat]
recovery_policy`` config, by the failed Dag's tags (``faultcat:retry=approval``) and by its params
(``faultcat_policy``). An invalid override is ignored and reported in ``warnings``: a typo in a tag
must not stop a recovery.

Override documents (config, params) have the shape of :class:`RecoveryPolicy`, every key optional,
categories merged one by one::

    {"retry_budget": 5, "categories": {"TIMEOUT": {"retry": "approval"}}}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_faultcat.core.models import Category

RetryMode = Literal["auto", "approval", "never"]

#: The tag prefix of per-Dag overrides.
TAG_PREFIX = "faultcat:"
#: The Dag param that carries a per-Dag override document.
PARAM_NAME = "faultcat_policy"


class CategoryPolicy(BaseModel):
    """What may be done about failures of one category.

    :param retry: ``auto`` (retry without a human), ``approval`` (a human approves first) or
        ``never``.
    :param wait: wait (backoff with jitter) before retrying: the category is often transient.
    :param retry_success_prior: how often a rerun fixes a failure of this category when the
        diagnosis is right (0-1); it weighs the retry options against a manual fix.
    """

    model_config = ConfigDict(extra="forbid")

    retry: RetryMode = "approval"
    wait: bool = False
    retry_success_prior: float = Field(default=0.3, ge=0.0, le=1.0)


def _defaults() -> dict[Category, CategoryPolicy]:
    transient = {"retry": "auto", "wait": True, "retry_success_prior": 0.85}
    return {
        Category.NETWORK: CategoryPolicy(**transient),
        Category.TIMEOUT: CategoryPolicy(**transient),
        Category.SERVICE_DEPENDENCY: CategoryPolicy(**transient),
        # A rerun may find the memory, disk or slot it lacked, but may also make things worse.
        Category.RESOURCE_EXHAUSTION: CategoryPolicy(retry="approval", wait=True, retry_success_prior=0.4),
        # Rerunning a half-done VM or storage operation can duplicate what it created.
        Category.VIRTUALIZATION: CategoryPolicy(retry="approval", retry_success_prior=0.35),
        Category.STORAGE: CategoryPolicy(retry="approval", retry_success_prior=0.3),
        Category.STATE_MISMATCH: CategoryPolicy(retry="approval", retry_success_prior=0.3),
        # The same credentials or config fail the same way: never worth a retry of its own.
        Category.CREDENTIAL: CategoryPolicy(retry="never", retry_success_prior=0.05),
        Category.CONFIGURATION: CategoryPolicy(retry="never", retry_success_prior=0.05),
        Category.UNKNOWN: CategoryPolicy(retry="approval", retry_success_prior=0.3),
    }


class RecoveryPolicy(BaseModel):
    """The whole recovery policy.

    :param categories: per-category policy.
    :param auto_min_confidence: below this diagnosis confidence an ``auto`` retry needs approval.
    :param retry_budget: automatic retries per (dag_id, task_id) per window.
    :param retry_budget_window_seconds: the budget window, in seconds.
    :param backoff_base_seconds: first wait of a WAIT_AND_RETRY, doubled per retry in the window.
    :param backoff_max_seconds: longest wait, in seconds.
    :param backoff_jitter: +/- fraction of random jitter on each wait.
    :param circuit_failure_threshold: failed recoveries of a Dag within the circuit window that stop
        its automatic retries.
    :param circuit_window_seconds: the circuit window, in seconds.
    :param circuit_cooldown_seconds: how long an open circuit stays open, in seconds.
    :param storm_window_seconds: failures of one Dag with one root cause within this many seconds
        become one escalation.
    :param storm_settle_seconds: how long the first escalation of a storm waits for the rest to
        arrive before it is sent, in seconds.
    :param approval_timeout_seconds: how long an approval waits before falling back to ESCALATE.
    :param allowed_handlers: custom recovery handlers (entry point names) that may run.
    :param regression_sev: the severity an escalation of a new fingerprint (a regression) carries.
    :param known_sev: the severity an escalation of a fingerprint seen before carries.
    :param sources: where this policy came from, in order of application.
    :param warnings: overrides that were ignored, with why.
    """

    model_config = ConfigDict(extra="forbid")

    categories: dict[Category, CategoryPolicy] = Field(default_factory=_defaults)
    auto_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    retry_budget: int = Field(default=3, ge=0)
    retry_budget_window_seconds: int = Field(default=3600, ge=1)
    backoff_base_seconds: float = Field(default=30.0, ge=0)
    backoff_max_seconds: float = Field(default=600.0, ge=0)
    backoff_jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    circuit_failure_threshold: int = Field(default=3, ge=1)
    circuit_window_seconds: int = Field(default=3600, ge=1)
    circuit_cooldown_seconds: int = Field(default=1800, ge=1)
    storm_window_seconds: int = Field(default=900, ge=1)
    storm_settle_seconds: float = Field(default=30.0, ge=0)
    approval_timeout_seconds: int = Field(default=3600, ge=1)
    allowed_handlers: list[str] = Field(default_factory=list)
    regression_sev: str = Field(default="SEV2", min_length=1, max_length=20)
    known_sev: str = Field(default="SEV3", min_length=1, max_length=20)
    sources: list[str] = Field(default_factory=lambda: ["defaults"])
    warnings: list[str] = Field(default_factory=list)

    def for_category(self, category: Category) -> CategoryPolicy:
        """The policy of ``category`` (the UNKNOWN policy when it has none)."""
        return self.categories.get(category) or self.categories.get(Category.UNKNOWN) or CategoryPolicy()

    def merged(self, override: Any, source: str) -> RecoveryPolicy:
        """A copy with ``override`` applied; an invalid override is ignored and noted in ``warnings``.

        :param override: a dict shaped like this model, every key optional (``categories`` merged
            per category and per field).
        :param source: where the override comes from (e.g. ``config``, ``dag tags``), for the bundle.
        """
        if not override:
            return self
        base = self.model_dump(mode="json")
        if not isinstance(override, dict):
            return self._warn(f"{source}: a policy override must be an object, got {type(override).__name__}")
        candidate = {**base, **{k: v for k, v in override.items() if k != "categories"}}
        categories = {k: dict(v) for k, v in base["categories"].items()}
        raw_categories = override.get("categories") or {}
        if not isinstance(raw_categories, dict):
            return self._warn(f"{source}: 'categories' must be an object")
        for name, fields in raw_categories.items():
            key = str(name).upper()
            if not isinstance(fields, dict):
                return self._warn(f"{source}: categories.{name} must be an object")
            categories[key] = {**categories.get(key, {}), **fields}
        candidate["categories"] = categories
        candidate["sources"] = [*self.sources, source]
        try:
            return RecoveryPolicy.model_validate(candidate)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            return self._warn(f"{source}: {where}: {err['msg']} (ignored)")

    def _warn(self, message: str) -> RecoveryPolicy:
        return self.model_copy(update={"warnings": [*self.warnings, message]})


def override_from_tags(tags: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn a Dag's ``faultcat:`` tags into a policy override.

    Understood tags: ``faultcat:retry=never`` (no category is retried), ``faultcat:retry=approval``
    (what would be retried automatically waits for a human), ``faultcat:retry=auto`` (what would
    wait for a human is retried automatically; ``never`` stays ``never`` for both),
    ``faultcat:retry.<CATEGORY>=auto|approval|never``, ``faultcat:retry_budget=<n>`` and
    ``faultcat:handler=<name>`` (allow a custom handler). Other ``faultcat:`` tags are reported.

    :param tags: the Dag's tags, as the REST API lists them.
    :return: the override and the tags that were not understood, with why.
    """
    override: dict[str, Any] = {}
    problems: list[str] = []
    for tag in tags:
        if not tag.startswith(TAG_PREFIX) or tag in ("faultcat",):
            continue
        body = tag[len(TAG_PREFIX) :]
        key, sep, value = body.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            if key not in ("example",):
                problems.append(f"dag tags: {tag!r} is not key=value (ignored)")
            continue
        if key.split(".")[0] == "retry" and value not in ("auto", "approval", "never"):
            problems.append(f"dag tags: {tag!r}: retry must be auto, approval or never (ignored)")
        elif key == "retry":
            # Relative to each category's mode, resolved in resolve_policy (see there).
            override["_retry_all"] = value
        elif key.startswith("retry."):
            override.setdefault("categories", {}).setdefault(key[len("retry.") :].upper(), {})["retry"] = (
                value
            )
        elif key == "retry_budget":
            try:
                override["retry_budget"] = int(value)
            except ValueError:
                problems.append(f"dag tags: {tag!r}: retry_budget must be an integer (ignored)")
        elif key == "handler":
            override.setdefault("allowed_handlers", []).append(value)
        else:
            problems.append(f"dag tags: {tag!r}: unknown faultcat tag (ignored)")
    return override, problems


def resolve_policy(
    config: Any = None, tags: list[str] | None = None, params: Any = None, base: RecoveryPolicy | None = None
) -> RecoveryPolicy:
    """Defaults, then the config's override, then the Dag's tags, then its params.

    :param config: the ``[faultcat] recovery_policy`` document (already parsed), if any.
    :param tags: the failed Dag's tags.
    :param params: the failed Dag's ``faultcat_policy`` param value, if any.
    :param base: the policy to start from (default: the built-in defaults).
    """
    policy = base or RecoveryPolicy()
    policy = policy.merged(config, "config")
    tag_override, problems = override_from_tags(list(tags or []))
    if problems:
        policy = policy.model_copy(update={"warnings": [*policy.warnings, *problems]})
    retry_all = tag_override.pop("_retry_all", None)
    if retry_all:
        per_category = tag_override.setdefault("categories", {})
        for category, current in policy.categories.items():
            mode = current.retry
            if retry_all == "never" or (mode != "never" and retry_all in ("approval", "auto")):
                mode = retry_all
            per_category.setdefault(category.value, {}).setdefault("retry", mode)
    if tag_override:
        if "allowed_handlers" in tag_override:
            tag_override["allowed_handlers"] = [*policy.allowed_handlers, *tag_override["allowed_handlers"]]
        policy = policy.merged(tag_override, "dag tags")
    return policy.merged(params, "dag params")
