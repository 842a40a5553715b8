"""bench.loadtest's replica arithmetic (``--plan``): what docs/deploy.md's capacity table is computed with."""

from __future__ import annotations

from bench.loadtest import Result, Scenario, autoscaling, plan_table


def run(rate: float, server_cpu: float, concurrency: int = 32) -> Result:
    result = Result(Scenario("28x28", concurrency, 10.0, 1_000_000), requests=int(rate * 10), wall_seconds=10.0)
    result.server_cpu = server_cpu
    return result


def test_the_target_and_the_cpu_request_are_read_from_the_manifests() -> None:
    target, request = autoscaling()
    assert 0 < target < 1 and request == 1.5


def test_replicas_follow_from_the_cpu_a_request_costs_at_the_autoscalers_target() -> None:
    # 300 req/s using 1.5 CPUs: 5 ms of CPU a request; at 60% of 2 CPUs (1.2 CPUs) a replica serves 240 req/s
    table = plan_table([run(100, 0.5, concurrency=8), run(300, 1.5)], request=2, loads=[1000, 10000], target=0.6)
    assert "5.00 ms of CPU a request" in table
    assert "a replica serves 240 req/s" in table
    assert "1000 req/s: 5 replicas" in table and "10000 req/s: 42 replicas" in table
    assert "NOTE" not in table


def test_a_rate_beyond_the_cpu_seen_is_flagged_as_extrapolated() -> None:
    table = plan_table([run(100, 0.5)], request=2, loads=[1000], target=0.6)  # 1.2 CPUs at the target, 0.5 seen
    assert "extrapolated, not measured" in table
    assert "a replica serves 240 req/s" in table
