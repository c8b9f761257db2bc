"""core/rollout.py: the pure three-phase plan (load, switch, trim) of DESIGN.md §4."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.desired import ModelState, VersionPolicy
from bot.core.rollout import HISTORY_LIMIT, ChangeSpec, Routing, current_version, plan_rollout

BASE = "/models/fraud_detector"


def state(versions: set[int], labels: dict[str, int] | None = None, history: tuple[int, ...] = ()) -> ModelState:
    return ModelState(
        name="fd",
        base_path=BASE,
        policy=VersionPolicy.specific(versions),
        labels=tuple(sorted((labels or {}).items())),
        generation=7,
        stable_history=history,
    )


def test_warm_label_rollback_needs_no_load() -> None:
    """Rolling `stable` back to a version still in `specific` leaves phase 1 identical to the current state."""
    before = state({2, 3}, {"stable": 3}, history=(2,))
    plan = plan_rollout(before, ChangeSpec("fd", 2))
    assert plan.load.served_config() == before.served_config()
    assert plan.switch.label("stable") == 2
    assert plan.from_version == 3


def test_cold_label_rollback_loads_moves_and_trims_to_keep_warm() -> None:
    """A rollback to an unloaded version adds it, moves the label, then keeps only the previous stable warm."""
    before = state({2, 3}, {"stable": 3}, history=(2,))
    plan = plan_rollout(before, ChangeSpec("fd", 1, keep_warm=1))
    assert plan.load.policy.versions == (1, 2, 3)
    assert plan.load.label("stable") == 3  # labels never move in the load phase
    assert plan.switch.label("stable") == 1
    assert plan.trim.policy.versions == (1, 3)
    assert plan.removed_versions() == (2,)
    assert plan.trim.stable_history[:2] == (3, 2)


def test_keep_warm_zero_keeps_only_labelled_versions() -> None:
    """keep_warm=0 trims every version that is neither the target nor labelled."""
    before = state({2, 3}, {"stable": 3})
    plan = plan_rollout(before, ChangeSpec("fd", 2, keep_warm=0))
    assert plan.trim.policy.versions == (2,)


def test_labelled_versions_are_never_trimmed() -> None:
    """A version another label points at survives the trim even with keep_warm=0."""
    before = state({2, 3, 4}, {"stable": 3, "canary": 4})
    plan = plan_rollout(before, ChangeSpec("fd", 2, keep_warm=0))
    assert plan.trim.policy.versions == (2, 4)
    assert plan.trim.label_map() == {"stable": 2, "canary": 4}


def test_latest_routing_rollback_drops_higher_versions() -> None:
    """With routing latest, unversioned clients follow only once every higher version is gone."""
    before = state({2, 3})
    plan = plan_rollout(before, ChangeSpec("fd", 2, routing=Routing.LATEST))
    assert plan.from_version == 3
    assert plan.load.served_config() == before.served_config()
    assert plan.switch.policy.versions == (2,)
    assert plan.trim.policy.versions == (2,)
    assert plan.trim.stable_history[0] == 3


def test_latest_routing_moves_labels_off_dropped_versions() -> None:
    """A label left on a dropped version would make every later reload fail, so it follows the target."""
    before = state({2, 3}, {"canary": 3})
    plan = plan_rollout(before, ChangeSpec("fd", 2, routing=Routing.LATEST))
    assert plan.switch.label_map() == {"canary": 2}


def test_latest_routing_promote_keeps_previous_warm() -> None:
    """Promoting to a higher version under latest routing keeps the previous one for a warm rollback."""
    before = state({2})
    plan = plan_rollout(before, ChangeSpec("fd", 3, routing=Routing.LATEST, keep_warm=1))
    assert plan.load.policy.versions == (2, 3)
    assert plan.trim.policy.versions == (2, 3)


def test_canary_label_leaves_stable_history_alone() -> None:
    """Only moving `stable` (or latest) records history; a canary promotion does not."""
    before = state({2, 3}, {"stable": 2}, history=(1,))
    plan = plan_rollout(before, ChangeSpec("fd", 3, label="canary"))
    assert plan.trim.stable_history == (1,)
    assert plan.trim.label_map() == {"stable": 2, "canary": 3}


def test_history_is_bounded_and_unique() -> None:
    """The stable history is most-recent-first, never repeats a version and stops at HISTORY_LIMIT."""
    before = state({20}, {"stable": 20}, history=tuple(range(1, 15)))
    plan = plan_rollout(before, ChangeSpec("fd", 5))
    assert plan.trim.stable_history[0] == 20
    assert 5 not in plan.trim.stable_history
    assert len(plan.trim.stable_history) == HISTORY_LIMIT


def test_every_phase_has_the_next_generation() -> None:
    """Approvals bind to the generation, so each phase of one rollout carries generation + 1."""
    plan = plan_rollout(state({2, 3}, {"stable": 3}), ChangeSpec("fd", 1))
    assert {plan.load.generation, plan.switch.generation, plan.trim.generation} == {8}


def test_non_specific_policy_starts_from_what_is_loaded() -> None:
    """A model served with `latest` is converted to `specific` over the versions the fleet has loaded."""
    before = ModelState(name="fd", base_path=BASE, policy=VersionPolicy(kind="latest"))
    plan = plan_rollout(before, ChangeSpec("fd", 1, routing=Routing.LATEST), loaded={3})
    assert plan.from_version == 3
    assert plan.load.policy == VersionPolicy.specific({1, 3})
    assert plan.switch.policy.versions == (1,)


def test_first_rollout_of_an_unserved_model() -> None:
    """A model nobody serves yet has no current version; the plan loads the target alone."""
    before = ModelState(name="fd", base_path=BASE, policy=VersionPolicy.specific(()))
    plan = plan_rollout(before, ChangeSpec("fd", 1))
    assert plan.from_version is None
    assert plan.load.policy.versions == (1,)
    assert plan.trim.label_map() == {"stable": 1}


def test_current_version_by_routing() -> None:
    """Labels routing reads the label; latest routing reads the highest specific version."""
    s = state({2, 3}, {"stable": 2})
    assert current_version(s, Routing.LABELS) == 2
    assert current_version(s, Routing.LATEST) == 3


@given(
    versions=st.sets(st.integers(1, 12), max_size=6),
    stable=st.integers(1, 12),
    target=st.integers(1, 12),
    keep_warm=st.integers(0, 3),
    routing=st.sampled_from(list(Routing)),
    history=st.lists(st.integers(1, 12), max_size=5, unique=True),
)
def test_plan_invariants(
    versions: set[int], stable: int, target: int, keep_warm: int, routing: Routing, history: list[int]
) -> None:
    """For any state: the target survives every phase, labels point at kept versions, clients end on target."""
    before = state(versions | {stable}, {"stable": stable}, tuple(history))
    plan = plan_rollout(before, ChangeSpec("fd", target, routing=routing, keep_warm=keep_warm))
    for phase in (plan.load, plan.switch, plan.trim):
        assert target in phase.policy.versions
    assert set(plan.trim.policy.versions) <= set(plan.switch.policy.versions) <= set(plan.load.policy.versions)
    assert set(plan.trim.label_map().values()) <= set(plan.trim.policy.versions)
    if routing is Routing.LABELS:
        assert plan.switch.label("stable") == target
        assert plan.load.label_map() == before.label_map()
    else:
        assert max(plan.switch.policy.versions) == target
    extra = set(plan.trim.policy.versions) - {target} - set(plan.trim.label_map().values())
    assert len(extra) <= keep_warm
