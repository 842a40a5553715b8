"""bench.loadtest's replica arithmetic (``--plan``): what docs/deploy.md's capacity table is computed with."""

from __future__ import annotations

from bench.loadtest import Result, Scenario, hpa_target, plan_table


def run(rate: float, server_cpu: float, concurrency: int = 32) -> Result:
    result = Result(Scenario("28x28", concurrency, 10.0, 1_000_000), requests=int(rate * 10), wall_seconds=10.0)
    result.server_cpu = server_cpu
    return result


def test_the_hpa_target_is_read_from_the_manifest() -> None:
    assert 0 < hpa_target() < 1


def test_replicas_follow_from_the_rate_at_the_autoscalers_cpu_target() -> None:
    # 300 req/s using 1.8 of 2 CPUs (90%): at a 60% target a replica serves 300 * 0.6 / 0.9 = 200 req/s
    table = plan_table([run(100, 0.5, concurrency=8), run(300, 1.8)], cpus=2, loads=[1000, 10000], target=0.6)
    assert "one replica at the target: 200 req/s" in table
    assert "1000 req/s: 5 replicas" in table and "10000 req/s: 50 replicas" in table
    assert "NOTE" not in table


def test_a_replica_that_saturates_below_the_target_is_flagged() -> None:
    table = plan_table([run(300, 1.0)], cpus=2, loads=[1000], target=0.6)  # 50% at saturation
    assert "the HPA would not scale" in table
    assert "one replica at the target: 300 req/s" in table
