"""The router's running parts, built once at start-up (`start`) and read back, typed, through
`router_parts` by the API's dependencies and the consumers."""

from __future__ import annotations

from dataclasses import dataclass

from ccshared.service import Runtime
from router.classifier.store import ModelSource
from router.db.policies import PolicyCache, ensure_default_policy
from router.db.rules import RulesCache, ensure_default_rules
from router.settings import RouterSettings
from router.tasks.assignment import Assigner


@dataclass(frozen=True)
class RouterParts:
    policies: PolicyCache
    rules: RulesCache
    assigner: Assigner


def router_parts(runtime: Runtime) -> RouterParts:
    parts = runtime.parts
    if not isinstance(parts, RouterParts):
        raise RuntimeError("the router's parts are not built yet (before start-up?)")
    return parts


async def start(runtime: Runtime, settings: RouterSettings) -> None:
    """The shipped policy and rules if there are none yet, the caches, the assignment loop."""
    async with runtime.engine.begin() as conn:
        await ensure_default_policy(conn)
        await ensure_default_rules(conn)
    policies = PolicyCache(runtime.engine, settings.policy_cache_s)
    # The trained classifier (0.03 s, 5 MB): the version the training job promoted in the
    # database, else the directory's, else the shipped one; re-read when a new one is
    # promoted, loaded here at start; ROUTER_CLASSIFIER_ENABLED=false: the rules alone.
    models = ModelSource(settings.classifier_dir) if settings.classifier_enabled else None
    rules = RulesCache(
        runtime.engine, settings.policy_cache_s, models.current_in if models else None
    )
    await rules.current()
    assigner = Assigner(
        runtime.engine,
        policies,
        interval_s=settings.assign_interval_s,
        predict_breach=settings.predict_breach,
        refusal_cooldown_s=settings.refusal_cooldown_s,
        missed_offer_status=settings.missed_offer_status,
        tracer=runtime.tracer,
    )
    if settings.assign_in_background:
        assigner.start()
    runtime.parts = RouterParts(policies=policies, rules=rules, assigner=assigner)


async def stop(runtime: Runtime) -> None:
    await router_parts(runtime).assigner.stop()
