"""Red team (issue 22): work a tenant starts in a thread of its own logs under that tenant. A
reconcile job (relay/reconcile?tenant=b) ran in a fresh thread, whose context is empty, so its
log lines said tenant=default."""

from __future__ import annotations

import threading

from shared.completeness.reconcile_jobs import in_thread
from shared.telemetry import current_tenant


def test_a_reconcile_job_thread_keeps_the_tenant_of_who_started_it() -> None:
    seen: list[str] = []
    done = threading.Event()

    def work() -> None:
        seen.append(current_tenant.get())
        done.set()

    token = current_tenant.set("fabrikam")
    try:
        in_thread(work)
    finally:
        current_tenant.reset(token)
    assert done.wait(5) and seen == ["fabrikam"]
