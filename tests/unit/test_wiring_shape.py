"""The entry point binds, the composition root constructs: both read as syntax (issue 21)."""

from __future__ import annotations

import ast
import typing
from datetime import timedelta
from pathlib import Path

from shared.completeness.reconcile import ReconcileConfig
from shared.completeness.timer import Completeness
from shared.limits import RECONCILE_DEDUP_TTL
from shared.ops.services import Services, auto_disable_rule, retry_worker_config
from shared.settings import RetryWorkerLimits, load_settings

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_ENV = {
    "LOGS_INGESTION_ENDPOINT": "https://relay-dce.westeurope-1.ingest.monitor.azure.com",
    "LOGS_DCR_IMMUTABLE_ID": "dcr-0123456789abcdef0123456789abcdef",
    "RELAY_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


def _tree(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(encoding="utf-8"))


def test_function_app_is_bindings_only() -> None:
    """Each trigger's body is one call (after its docstring); nothing else is defined there."""
    module = _tree("function_app.py")
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    assert functions, "no triggers found"
    for function in functions:
        assert function.decorator_list, (
            f"{function.name}: a helper in function_app.py (move it to shared/ops)"
        )
        body = function.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        assert len(body) == 1, f"{function.name} holds logic: {len(body)} statements"
        statement = body[0]
        assert isinstance(statement, ast.Return | ast.Expr) and isinstance(statement.value, ast.Call), (
            f"{function.name}: its body is not one call"
        )
        assert not any(isinstance(n, ast.Lambda | ast.If | ast.Try) for n in ast.walk(statement)), (
            function.name
        )


def test_the_composition_root_never_reaches_into_what_it_built() -> None:
    """No `thing.attr = …` after construction: each part gets what it needs through its constructor."""
    build = next(
        node
        for node in ast.walk(_tree("shared/ops/services.py"))
        if isinstance(node, ast.FunctionDef) and node.name == "build_services"
    )
    late = [
        f"line {node.lineno}: {ast.unparse(target)}"
        for node in ast.walk(build)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
    ]
    assert late == [], late


def test_services_completeness_is_never_optional() -> None:
    assert typing.get_type_hints(Services)["completeness"] is Completeness


def test_configs_are_built_from_settings() -> None:
    """Each config carries the settings' values, defaults included (none of its own)."""
    settings = load_settings(
        {
            **MINIMAL_ENV,
            "RETRY_CLAIM_LEASE_SECONDS": "300",
            "RECOVERY_PROBE_SECONDS": "45",
            "AUTO_DISABLE_FAILURE_RATIO": "0.5",
            "RECONCILE_DELAY_MINUTES": "40",
            "DEDUP_WINDOW_HOURS": "72",
        }
    )
    worker = retry_worker_config(settings)
    assert (worker.lease, worker.start_margin, worker.probe_every) == (
        timedelta(seconds=300),
        timedelta(seconds=150),
        timedelta(seconds=45),
    )
    assert worker.poll == settings.worker_poll and worker.limits == RetryWorkerLimits()
    rule = auto_disable_rule(settings)
    assert (rule.ratio, rule.window, rule.min_attempts, rule.grace) == (
        0.5,
        settings.auto_disable_window,
        settings.auto_disable_min_attempts,
        settings.auto_disable_grace,
    )
    reconcile = ReconcileConfig.from_settings(settings)
    assert reconcile.delay == timedelta(minutes=40)
    assert reconcile.dedup_ttl == timedelta(hours=72)  # the longer of the two
    assert ReconcileConfig.from_settings(load_settings(MINIMAL_ENV)).dedup_ttl == RECONCILE_DEDUP_TTL
    assert ReconcileConfig.from_settings(load_settings(MINIMAL_ENV)).cloud == "EU"
