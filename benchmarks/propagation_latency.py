"""Event-mode propagation latency: a call-center phone change until the CRM shows it.

Needs the whole stack running under the scheduler (`make up`: `airflow standalone` with scheduler,
triggerer, dag-processor and API server, plus the sandbox and Redis) and one full batch cycle done
(`make demo`, or the scheduled runs), so the crosswalk knows which CRM account belongs to which
caller; ``--start`` runs `python -m include.cli up` first when the API does not answer.

For each of ``--changes`` customers held by one CRM account and one caller that stay linked without
their phone (``pick_customers``), it does what an agent does in the call center
(``include.sandbox.changes.agent_changes_contact``: new phone on the caller, a contact-change
record, the change events on the call center's Redis channel), then polls the CRM account until
its phone is the new number in E.164. In between: extract_callcenter (started by its AssetWatcher,
event mode) -> dbt_customer_360 (event-mode build of what the call center feeds) -> push_flows
(``event_push``: the flows reacting to the call center, crm_golden_contacts among them).

- ``--mode spaced`` (default): the next change is made once the previous one arrived (plus
  ``--pause`` seconds), so each change gets a cycle of its own: the latency of one change.
- ``--mode burst --burst-size 5``: that many changes within a second, then wait for all of them:
  what a busy call center does; Airflow merges the messages into one run per DAG.

It prints each change's latency, p50/p95/max, and where the time went per stage, from the task
instances' start and end times of the runs that carried the change (the Airflow REST API of the
running stack; the runs are linked through their triggering Asset events), and the load average.
The figures also go to ``benchmarks/out/propagation_latency.json``. Nothing is asserted.

    eval "$(make -s env)"; python -m benchmarks.propagation_latency --changes 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from include.config import PROJECT_ROOT, sandbox_dir, sandbox_port, warehouse_url
from include.sandbox.changes import agent_changes_contact

OUT = Path(__file__).resolve().parent / "out" / "propagation_latency.json"
#: The push_flows task that sends to the CRM: in an event-mode run the one task doing the selected
#: flows, in a batch run the CRM flow's send task.
PUSH_TASKS = ("event_push", "crm_golden_contacts.send_crm_accounts")
#: The DAGs a change (and the CRM's change events for our own write back) goes through.
CHAIN = ["extract_callcenter", "extract_crm", "dbt_customer_360", "push_flows"]
#: Identity rules that keep a caller linked to its CRM account when the caller's phone changes.
PHONE_FREE_RULES = (
    "same_uscc",
    "same_id_card",
    "same_email_similar_name",
    "same_email_same_name",
    "same_company_name",
)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class AirflowApi:
    """The REST API (v2) of the running stack; a token from the simple auth manager (all admins)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        token = self.client.get("/auth/token").json()["access_token"]
        self.client.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params) -> dict:
        response = self.client.get(f"/api/v2{path}", params=params)
        response.raise_for_status()
        return response.json()

    def runs(self, dag_id: str, after: datetime) -> list[dict]:
        body = self.get(
            f"/dags/{dag_id}/dagRuns", run_after_gte=after.isoformat(), order_by="run_after", limit=100
        )
        return body["dag_runs"]

    def active_runs(self, dag_ids: list[str]) -> list[str]:
        """``dag_id/run_id`` of the runs of these DAGs that are queued or running."""
        active = []
        for dag_id in dag_ids:
            for state in ("queued", "running"):
                body = self.get(f"/dags/{dag_id}/dagRuns", state=state, limit=100)
                active += [f"{dag_id}/{r['dag_run_id']}" for r in body["dag_runs"]]
        return active

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of the run: the API pages them (at most 100 a page, whatever the
        limit asked), and a batch dbt run has a task per model."""
        found: list[dict] = []
        while True:
            body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(found))
            found += body["task_instances"]
            if not body["task_instances"] or len(found) >= body["total_entries"]:
                return found

    def upstream_events(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]


@dataclass
class RunTimes:
    """One DAG run that carried a change: when it was queued, ran, and how much of it was tasks."""

    dag_id: str
    run_id: str
    queued: datetime
    start: datetime
    end: datetime
    busy_s: float  # union of its task instances' run times
    tasks: dict[str, float] = field(default_factory=dict)  # task -> seconds (ran, not skipped)

    @classmethod
    def load(cls, api: AirflowApi, dag_id: str, run_id: str, until_task: str | None = None) -> RunTimes:
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        tis = [t for t in api.task_instances(dag_id, run_id) if t["start_date"] and t["end_date"]]
        tis = [t for t in tis if t["state"] not in ("skipped", "upstream_failed")]
        end = _ts(run["end_date"])
        if until_task:  # the change is delivered when this task ends; later tasks do not count
            end = max(_ts(t["end_date"]) for t in tis if t["task_id"] == until_task)
            tis = [t for t in tis if _ts(t["start_date"]) <= end]
        intervals = sorted((_ts(t["start_date"]), min(_ts(t["end_date"]), end)) for t in tis)
        busy, cursor = 0.0, None
        for start, stop in intervals:
            if cursor is None or start > cursor:
                busy += (stop - start).total_seconds()
                cursor = stop
            elif stop > cursor:
                busy += (stop - cursor).total_seconds()
                cursor = stop
        tasks = {
            t["task_id"]: round(_ts(t["end_date"]).timestamp() - _ts(t["start_date"]).timestamp(), 1)
            for t in tis
        }
        return cls(dag_id, run_id, _ts(run["queued_at"]), _ts(run["start_date"]), end, busy, tasks)

    @property
    def wall_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class Trace:
    """A change and the runs that carried it to the CRM; stage seconds from the change."""

    caller_id: str
    account_id: str
    phone: str
    made: datetime
    seen: datetime | None = None
    stages: dict[str, float] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def latency_s(self) -> float | None:
        return None if self.seen is None else (self.seen - self.made).total_seconds()


def pick_customers(n: int) -> list[tuple[str, str]]:
    """(caller_id, CRM account id) of n customers held by exactly one CRM account and one caller,
    linked directly by evidence other than the phone, so they stay one customer when the caller's
    phone changes (a caller linked by the phone alone becomes a new customer, rightly)."""
    with psycopg.connect(warehouse_url()) as conn:
        return conn.execute(
            """
with pairs as (
    select c.customer_key, c.source_record_id as caller_id, a.source_record_id as account_id
    from marts.customer_crosswalk c
    join marts.customer_crosswalk a on a.customer_key = c.customer_key and a.source_system = 'crm'
    where c.source_system = 'callcenter'
      and (select count(*) from marts.customer_crosswalk k
           where k.customer_key = c.customer_key and k.source_system in ('crm', 'callcenter')) = 2
)
select p.caller_id, p.account_id
from pairs p
where exists (
    select 1 from marts.identity_link_evidence e
    where e.customer_key = p.customer_key and e.rule_name = any(%s) and e.rule_score >= 0.9
      and 'callcenter:' || p.caller_id in (e.record_id_a, e.record_id_b)
      and 'crm:' || p.account_id in (e.record_id_a, e.record_id_b)
)
  and not exists (select 1 from ops.erasure_requests r where r.customer_key = p.customer_key)
order by md5(p.caller_id)
limit %s
""",
            (list(PHONE_FREE_RULES), n),
        ).fetchall()


def trace_runs(api: AirflowApi, trace: Trace, since: datetime) -> None:
    """Find the push_flows run that delivered the change and walk its triggering Asset events back
    to the dbt and extract runs; fill the stage seconds (from the change being made)."""
    delivered = None
    for run in reversed(api.runs("push_flows", since)):
        tis = {t["task_id"]: t for t in api.task_instances("push_flows", run["dag_run_id"])}
        # the send that delivered it started before the CRM showed it (the CRM has the value before
        # the task has finished) and ended after the change was made
        sends = [
            task_id
            for task_id in PUSH_TASKS
            if (send := tis.get(task_id))
            and send["state"] == "success"
            and _ts(send["start_date"]) <= trace.seen
            and _ts(send["end_date"]) >= trace.made
        ]
        if sends:
            delivered, push_task = run["dag_run_id"], sends[0]
            break
    if delivered is None:
        trace.notes.append("no push_flows run sent to the CRM before the change arrived")
        return
    push = RunTimes.load(api, "push_flows", delivered, until_task=push_task)
    dbt_runs = [
        e["source_run_id"]
        for e in api.upstream_events("push_flows", delivered)
        if e["source_dag_id"] == "dbt_customer_360"
    ]
    # the push starts when publish_marts emits the marts; the run's last task (publish_batch_marts,
    # skipped in event mode) ends after that
    dbt = RunTimes.load(api, "dbt_customer_360", max(dbt_runs), until_task="publish_marts")
    extract_runs = [
        e["source_run_id"]
        for e in api.upstream_events("dbt_customer_360", dbt.run_id)
        if e["source_dag_id"] == "extract_callcenter"
    ]
    extract = RunTimes.load(api, "extract_callcenter", max(extract_runs)) if extract_runs else None
    if extract is None:
        trace.notes.append(f"dbt run {dbt.run_id} was not started by a call-center extract")
        return
    heard = [_ts(e["timestamp"]) for e in api.upstream_events("extract_callcenter", extract.run_id)]
    trace.runs = {"extract": extract.run_id, "dbt": dbt.run_id, "push": push.run_id}
    made = trace.made
    marks = {
        "message heard (watcher)": min(heard) if heard else extract.queued,
        "extract queued": extract.queued,
        "extract done": extract.end,
        "dbt done": dbt.end,
        "push sent": push.end,
        "seen in CRM": trace.seen,
    }
    previous = made
    for name, at in marks.items():
        trace.stages[name] = round((at - previous).total_seconds(), 1)
        previous = at
    # inside the runs: task time and the scheduler's gaps between tasks, and the hops between DAGs
    trace.stages["extract: in tasks"] = round(extract.busy_s, 1)
    trace.stages["extract: queued->start + between tasks"] = round(
        (extract.end - extract.queued).total_seconds() - extract.busy_s, 1
    )
    trace.stages["hop extract->dbt start"] = round((dbt.start - extract.end).total_seconds(), 1)
    trace.stages["dbt: in tasks"] = round(dbt.busy_s, 1)
    trace.stages["dbt: between tasks"] = round(dbt.wall_s - dbt.busy_s, 1)
    trace.stages["dbt: dbt_event_build task"] = dbt.tasks.get("dbt_event_build", float("nan"))
    trace.stages["hop dbt->push start"] = round((push.start - dbt.end).total_seconds(), 1)
    trace.stages["push: in tasks"] = round(push.busy_s, 1)
    trace.stages["push: between tasks"] = round(push.wall_s - push.busy_s, 1)
    if dbt.tasks.get("dbt_event_build") is None:
        trace.notes.append("the dbt run was a batch build (a scheduled extract was among its triggers)")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ensure_stack(port: int, start: bool) -> None:
    try:
        if httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3).status_code == 200:
            return
    except httpx.HTTPError:
        pass
    if not start:
        raise SystemExit(
            f"no Airflow API on 127.0.0.1:{port}: start the stack with `make up` (or pass --start)"
        )
    subprocess.run([sys.executable, "-m", "include.cli", "up"], cwd=PROJECT_ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.propagation_latency", description=__doc__)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--mode", choices=("spaced", "burst"), default="spaced")
    parser.add_argument("--burst-size", type=int, default=5, help="changes per burst (--mode burst)")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds of quiet after a change arrived")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a change after this")
    parser.add_argument("--start", action="store_true", help="run `python -m include.cli up` if needed")
    parser.add_argument(
        "--retrace",
        metavar="JSON",
        help="only trace and summarise the changes of an earlier run's JSON again",
    )
    args = parser.parse_args(argv)
    if args.retrace:
        return retrace(Path(args.retrace), args)

    port = int(os.environ.get("C360_AIRFLOW_PORT", "8080"))
    ensure_stack(port, args.start)
    api = AirflowApi(f"http://127.0.0.1:{port}")
    customers = pick_customers(args.changes)
    if len(customers) < args.changes:
        raise SystemExit(
            f"only {len(customers)} customers are held by one CRM account and one caller linked without "
            "their phone; run a full cycle first (`make demo`)"
        )
    token = (sandbox_dir() / "token").read_text().strip()
    crm = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox_port()}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    began = datetime.now(UTC)
    load_before = os.getloadavg()
    load_samples: list[float] = []
    stamp = int(time.time()) % 10_000
    traces: list[Trace] = []
    group = 1 if args.mode == "spaced" else args.burst_size
    print(
        f"{args.changes} call-center phone changes, {args.mode}"
        + (f" (bursts of {group})" if group > 1 else " (each waits for the previous one to arrive)")
        + f"; load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}",
        flush=True,
    )
    for first in range(0, args.changes, group):
        # each change (or burst) starts on an idle pipeline: our write to the CRM comes back as a
        # CRM change event and runs a cycle of its own, which must not be counted in the next change
        idle_deadline = time.monotonic() + args.timeout
        while (active := api.active_runs(CHAIN)) and time.monotonic() < idle_deadline:
            time.sleep(1)
        if active:
            print(f"  the pipeline is still busy ({', '.join(active)}); going on", flush=True)
        batch = []
        for i in range(first, min(first + group, args.changes)):
            caller_id, account_id = customers[i]
            mobile = f"139{stamp:04d}{i:04d}"
            made = datetime.now(UTC)
            agent_changes_contact(caller_id, "phone", mobile, agent_id="latency-probe", now=made)
            trace = Trace(caller_id, account_id, f"+86{mobile}", made)
            traces.append(trace)
            batch.append(trace)
            print(f"change {i + 1:>2}: caller {caller_id} -> {mobile} (CRM account {account_id})", flush=True)
        deadline = time.monotonic() + args.timeout
        while any(t.seen is None for t in batch) and time.monotonic() < deadline:
            for trace in batch:
                if (
                    trace.seen is None
                    and crm.get(f"/crm/v1/accounts/{trace.account_id}").json().get("phone") == trace.phone
                ):
                    trace.seen = datetime.now(UTC)
                    print(f"  {trace.account_id}: {trace.latency_s:.1f} s", flush=True)
            load_samples.append(os.getloadavg()[0])
            time.sleep(0.5)
        for trace in batch:
            if trace.seen is None:
                print(f"  {trace.account_id}: not in the CRM after {args.timeout:.0f} s", flush=True)
        time.sleep(args.pause)
    load_after = os.getloadavg()

    report(api, traces, began, args, load_before, load_after, load_samples)
    return 0


def report(
    api: AirflowApi,
    traces: list[Trace],
    began: datetime,
    args: argparse.Namespace,
    load_before,
    load_after,
    load_samples: list[float],
) -> None:
    """Trace each change's runs, print the latencies and stages, write the JSON."""
    group = 1 if args.mode == "spaced" else args.burst_size
    for trace in traces:
        if trace.seen is not None:
            try:
                trace_runs(api, trace, began)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                trace.notes.append(f"could not trace the runs: {exc!r}")

    arrived = [t for t in traces if t.seen is not None]
    values = [t.latency_s for t in arrived]
    print()
    print(f"{'#':>2}  {'caller':<14}{'latency s':>10}  stages (s from the previous mark)")
    for i, trace in enumerate(traces, 1):
        lat = "-" if trace.latency_s is None else f"{trace.latency_s:.1f}"
        marks = "  ".join(f"{k} {v}" for k, v in list(trace.stages.items())[:6])
        print(f"{i:>2}  {trace.caller_id:<14}{lat:>10}  {marks}  {'; '.join(trace.notes)}")
    summary: dict = {"changes": args.changes, "arrived": len(arrived), "mode": args.mode, "burst_size": group}
    if values:
        summary.update(
            p50_s=round(statistics.median(values), 1),
            p95_s=round(percentile(values, 0.95), 1),
            max_s=round(max(values), 1),
        )
        print(
            f"\n{len(values)}/{args.changes} changes reached the CRM: p50 {summary['p50_s']} s, "
            f"p95 {summary['p95_s']} s, max {summary['max_s']} s (target p95 <= 60 s)"
        )
    stage_names = list(dict.fromkeys(k for t in arrived for k in t.stages))
    stages = {}
    for name in stage_names:
        vals = [t.stages[name] for t in arrived if name in t.stages and not math.isnan(t.stages[name])]
        if vals:
            stages[name] = {"p50": round(statistics.median(vals), 1), "p95": round(percentile(vals, 0.95), 1)}
    if stages:
        print("\nper stage (seconds; the first six add up to the latency):")
        for name, v in stages.items():
            print(f"  {name:<42}p50 {v['p50']:>6}   p95 {v['p95']:>6}")
    load = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in load_after],
        "mean_1min_during": round(statistics.fmean(load_samples), 2) if load_samples else None,
        "cores": os.cpu_count(),
    }
    print(
        f"\nload average: before {load['before']}, after {load['after']}, "
        f"mean 1-min during {load['mean_1min_during']} ({load['cores']} cores)"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "summary": summary,
                "stages": stages,
                "load": load,
                "changes": [asdict(t) | {"latency_s": t.latency_s} for t in traces],
            },
            default=str,
            indent=2,
        )
    )
    print(f"figures: {OUT}")


def retrace(path: Path, args: argparse.Namespace) -> int:
    """Trace the changes of an earlier run's JSON again (e.g. after the tracing was fixed)."""
    saved = json.loads(path.read_text())
    traces = []
    for c in saved["changes"]:
        t = Trace(c["caller_id"], c["account_id"], c["phone"], _ts(c["made"]), _ts(c["seen"]))
        traces.append(t)
    args.mode, args.burst_size, args.changes = (
        saved["summary"]["mode"],
        saved["summary"]["burst_size"],
        len(traces),
    )
    port = int(os.environ.get("C360_AIRFLOW_PORT", "8080"))
    load = saved["load"]
    began = min(t.made for t in traces)
    report(
        AirflowApi(f"http://127.0.0.1:{port}"),
        traces,
        began,
        args,
        load["before"],
        load["after"],
        [load["mean_1min_during"]] if load.get("mean_1min_during") else [],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
