"""Monitoring tables and the ``monitoring.pipeline_health`` view (green / amber / red per system).

Everything is computed from what the pipeline already records (``ops.extract_runs``; the
sync-back engine's ``ops.sync_runs``, ``ops.sync_outbox``, ``ops.sync_rejects`` and
``ops.sync_conflicts``) plus the tables here: data checks after each dbt build, end-to-end latency
per flow run and target, the thresholds from ``monitoring.yaml``, the per-source SLAs from the
source registry and each flow's targets (and their systems) from the target registry. Views, not
copies: the health view is always as current as the audit tables, and BI dashboards read it
directly.

Freshness of a source here (and in the sensors) is its *last successful extract*: a run that
succeeded confirms the warehouse matches the source as of then, so a quiet source with nothing to
land stays fresh. ``dbt source freshness`` measures the other thing, the newest row that landed,
and its results are kept alongside in ``ops.freshness_checks``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from include.extract.landing import OPS_DDL, OPS_SCHEMA
from include.monitoring.freshness import CHECKS_DDL
from include.monitoring.settings import Monitoring
from include.push.engine import ensure_ops
from include.push.targets import load_targets
from include.registry import Source

SCHEMA = "monitoring"

TABLES_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.thresholds (
    check_name text not null,
    scope text not null,
    amber numeric not null,
    red numeric not null,
    direction text not null check (direction in ('above', 'below')),
    primary key (check_name, scope)
);
create table if not exists {SCHEMA}.settings (
    name text primary key,
    value numeric not null
);
create table if not exists {SCHEMA}.data_checks (
    run_id text not null,
    checked_at timestamptz not null,
    relation text not null,
    check_name text not null,
    value numeric,
    threshold text,
    passed boolean not null,
    detail text not null,
    primary key (run_id, relation, check_name)
);
create index if not exists data_checks_relation_ix on {SCHEMA}.data_checks (relation, checked_at desc);
-- One row per flow and target (from targets.yaml): which system a flow's target belongs to.
create table if not exists {SCHEMA}.sync_targets (
    flow text not null,
    target text not null,
    system text not null,
    primary key (flow, target)
);
-- Issue 6 measured the retired push_runs (one target per run); a sync run has several targets.
do $$ begin
    if to_regclass('{SCHEMA}.push_latency') is not null and not exists (
        select 1 from information_schema.columns
        where table_schema = '{SCHEMA}' and table_name = 'push_latency' and column_name = 'flow') then
        drop table {SCHEMA}.push_latency;
    end if;
end $$;
create table if not exists {SCHEMA}.push_latency (
    run_id text not null,
    flow text not null,
    target text not null,
    pushed_at timestamptz not null,
    measured_records integer not null,
    p50_min numeric,
    p95_min numeric,
    max_min numeric,
    primary key (run_id, target)
);
create index if not exists push_latency_flow_ix on {SCHEMA}.push_latency (flow, target, pushed_at desc)
    where measured_records > 0;
create table if not exists {SCHEMA}.alert_state (
    alert_key text primary key,
    status text not null check (status in ('firing', 'ok')),
    severity text not null,
    title text not null,
    since timestamptz not null,
    updated_at timestamptz not null,
    channels text[] not null default '{{}}'
);
create table if not exists {SCHEMA}.alert_log (
    sent_at timestamptz not null default now(),
    alert_key text not null,
    transition text not null check (transition in ('firing', 'escalated', 'recovered')),
    severity text not null,
    channel text not null,
    delivered boolean not null,
    error text,
    message text not null
);
create table if not exists {SCHEMA}.bi_refreshes (
    refreshed_at timestamptz not null,
    data_as_of timestamptz,
    views text[] not null,
    duration_s numeric not null
);
"""

# A source's checks; per-entity figures roll up to the source's worst entity.
SOURCE_CHECKS_SQL = f"""
create or replace view {SCHEMA}.source_health as
with runs as (
    select *, row_number() over (partition by source, entity order by finished_at desc) as recency
    from {OPS_SCHEMA}.extract_runs
    where status = 'success'
),
lookback as (select value::int as n from {SCHEMA}.settings where name = 'volume_lookback_runs'),
min_history as (select value::int as n from {SCHEMA}.settings where name = 'volume_min_history'),
entity_volume as (
    select latest.source, latest.entity, latest.rows_read,
           percentile_cont(0.5) within group (order by earlier.rows_read) as usual_rows,
           count(earlier.*) as history_runs
    from runs latest
    join runs earlier
      on earlier.source = latest.source and earlier.entity = latest.entity
     and earlier.sync_mode = latest.sync_mode
     and earlier.recency between 2 and 1 + (select n from lookback)
    where latest.recency = 1
    group by latest.source, latest.entity, latest.rows_read
),
volume as (
    select source, entity, rows_read, usual_rows,
           case when history_runs < (select n from min_history) then null
                when usual_rows = 0 and rows_read = 0 then 1.0
                when usual_rows = 0 then null
                else rows_read / usual_rows end as volume_ratio
    from entity_volume
),
slas as (select scope as source from {SCHEMA}.thresholds where check_name = 'last_success_age_h'
         and scope <> '*'),
entities as (
    select distinct source, entity from {OPS_SCHEMA}.extract_runs
),
last_success as (
    select e.source, e.entity, max(r.finished_at) as last_success_at
    from entities e left join runs r using (source, entity)
    group by e.source, e.entity
),
failures as (
    select r.source, count(*) as failed_runs
    from {OPS_SCHEMA}.extract_runs r
    left join last_success s using (source, entity)
    where r.status in ('failed', 'rejected') and r.started_at > now() - interval '24 hours'
      and (s.last_success_at is null or r.started_at > s.last_success_at)
    group by r.source
),
quarantine as (
    select source, sum(rows_quarantined) as quarantined, sum(rows_read) as read
    from {OPS_SCHEMA}.extract_runs
    where started_at > now() - interval '24 hours' and status <> 'running'
    group by source
),
per_source as (
    -- the stalest entity is the source's freshness; an entity that never succeeded makes it unknown
    select source,
           case when bool_or(last_success_at is null) then null else min(last_success_at) end
               as last_success_at,
           string_agg(entity, ', ' order by entity) filter (where last_success_at is null)
               as never_succeeded
    from last_success group by source
)
select s.source, p.last_success_at,
       extract(epoch from now() - p.last_success_at) / 3600 as last_success_age_h,
       p.never_succeeded,
       coalesce(f.failed_runs, 0) as failed_runs_24h,
       case when q.read > 0 then 100.0 * q.quarantined / q.read else 0 end as quarantine_rate_pct,
       (select min(volume_ratio) from volume v where v.source = s.source) as volume_ratio_low,
       (select max(volume_ratio) from volume v where v.source = s.source) as volume_ratio_high,
       (select string_agg(format('%s %s rows vs usual %s', v.entity, v.rows_read,
                                 round(v.usual_rows::numeric)), '; ' order by v.entity)
        from volume v where v.source = s.source) as volume_detail
from slas s
left join per_source p using (source)
left join failures f using (source)
left join quarantine q using (source)
"""

# Per flow and target of the target registry, once the flow has run. A run counts as a push to a
# target when its send to that target finished without the target being unavailable (a run with
# rejects still pushed; the rejects are their own check). Open rows only, each by a partial index:
# the backlog is the records with an unresolved reject (retrying or given up), the outbox age the
# oldest change still queued or being retried.
FLOW_CHECKS_SQL = f"""
create index if not exists sync_runs_flow_ix on {OPS_SCHEMA}.sync_runs (flow, finished_at desc);
create index if not exists sync_outbox_acked_run_ix on {OPS_SCHEMA}.sync_outbox (last_run_id)
    where status = 'acked';
create or replace view {SCHEMA}.flow_health as
with flows as (
    select t.flow, t.target, t.system
    from {SCHEMA}.sync_targets t
    where exists (select 1 from {OPS_SCHEMA}.sync_runs r where r.flow = t.flow and not r.dry_run)
)
select f.flow, f.target, f.system,
       f.flow || '.' || f.target as subject,
       pushed.at as last_push_at,
       extract(epoch from now() - pushed.at) / 3600 as last_push_age_h,
       (select count(distinct j.record_key) from {OPS_SCHEMA}.sync_rejects j
        where j.flow = f.flow and j.target = f.target and j.resolved_at is null) as reject_backlog,
       coalesce(extract(epoch from now() - (
           select min(o.enqueued_at) from {OPS_SCHEMA}.sync_outbox o
           where o.flow = f.flow and o.target = f.target and o.status in ('pending', 'rejected')
       )) / 3600, 0) as outbox_age_h,
       (select count(*) from {OPS_SCHEMA}.sync_conflicts k
        where k.flow = f.flow and k.target = f.target and k.resolved_at is null) as open_conflicts,
       (select l.p95_min from {SCHEMA}.push_latency l
        where l.flow = f.flow and l.target = f.target and l.measured_records > 0
        order by l.pushed_at desc limit 1) as e2e_latency_p95_min
from flows f
cross join lateral (
    select max(r.finished_at) as at from {OPS_SCHEMA}.sync_runs r
    where r.flow = f.flow and not r.dry_run and r.finished_at is not null and r.status <> 'failed'
      and r.detail ? ('send_' || f.target) and r.detail -> ('send_' || f.target) ->> 'error' is null
) pushed
"""

WAREHOUSE_CHECKS_SQL = f"""
create or replace view {SCHEMA}.mart_health as
with runs as (
    select relation, run_id, max(checked_at) as checked_at, bool_and(passed) as passed,
           count(*) filter (where not passed) as failed,
           string_agg(detail, '; ' order by check_name) filter (where not passed) as failures
    from {SCHEMA}.data_checks group by relation, run_id
)
select relation,
       (select max(checked_at) from runs r2
        where r2.relation = r.relation and r2.passed) as last_good_build_at,
       extract(epoch from now() - (select max(checked_at) from runs r2
                                   where r2.relation = r.relation and r2.passed)) / 3600 as mart_build_age_h,
       failed as data_checks_failed,
       failures
from (select distinct on (relation) * from runs order by relation, checked_at desc) r
"""

# Every measured value against its threshold: the scope's own row, else the '*' default.
HEALTH_SQL = f"""
create or replace view {SCHEMA}.pipeline_health_checks as
with source_health as materialized (select * from {SCHEMA}.source_health),
flow_health as materialized (select * from {SCHEMA}.flow_health),
mart_health as materialized (select * from {SCHEMA}.mart_health),
measured as (
    select source as system, 'source' as area, source as subject, 'last_success_age_h' as check_name,
           last_success_age_h as value,
           case when never_succeeded is not null then 'never extracted successfully: ' || never_succeeded
                when last_success_at is null then 'no extract recorded'
                else format('last successful extract %s h ago (%s)', round(last_success_age_h::numeric, 1),
                            to_char(last_success_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))
           end as detail,
           'red' as when_missing
    from source_health
    union all
    select source, 'source', source, 'failed_runs_24h', failed_runs_24h,
           format('%s failed run(s) since the last success', failed_runs_24h), 'green'
    from source_health
    union all
    select source, 'source', source, 'quarantine_rate_pct', quarantine_rate_pct,
           format('%s%% of rows read in 24 h quarantined', round(quarantine_rate_pct::numeric, 2)), 'green'
    from source_health
    union all
    select source, 'source', source, 'volume_ratio_low', volume_ratio_low,
           coalesce(volume_detail, 'no baseline yet'), 'green'
    from source_health
    union all
    select source, 'source', source, 'volume_ratio_high', volume_ratio_high,
           coalesce(volume_detail, 'no baseline yet'), 'green'
    from source_health
    union all
    select system, 'flow', subject, 'last_push_age_h', last_push_age_h,
           case when last_push_at is null then 'no successful push recorded'
                else format('last successful push %s h ago', round(last_push_age_h::numeric, 1)) end,
           'red'
    from flow_health
    union all
    select system, 'flow', subject, 'reject_backlog', reject_backlog,
           format('%s record(s) with an open reject (ops.sync_rejects)', reject_backlog), 'green'
    from flow_health
    union all
    select system, 'flow', subject, 'outbox_age_h', outbox_age_h,
           format('oldest unacknowledged change in the outbox waiting %s h', round(outbox_age_h::numeric, 1)),
           'green'
    from flow_health
    union all
    select system, 'flow', subject, 'open_conflicts', open_conflicts,
           format('%s open conflict(s): the target changed the record after our last read',
                  open_conflicts), 'green'
    from flow_health
    union all
    select system, 'flow', subject, 'e2e_latency_p95_min', e2e_latency_p95_min,
           format('p95 source change -> acknowledged push %s min', round(e2e_latency_p95_min::numeric, 1)),
           'green'
    from flow_health
    union all
    select 'warehouse', 'mart', relation, 'data_checks_failed', data_checks_failed,
           coalesce(failures, 'all data checks passed'), 'green'
    from mart_health
    union all
    select 'warehouse', 'mart', relation, 'mart_build_age_h', mart_build_age_h,
           format('last build that passed its checks %s h ago', round(mart_build_age_h::numeric, 1)), 'red'
    from mart_health
)
select m.system, m.area, m.subject, m.check_name, round(m.value::numeric, 3) as value,
       t.amber, t.red,
       case when m.value is null then m.when_missing
            when t.check_name is null then 'green'
            when t.direction = 'above' and m.value >= t.red then 'red'
            when t.direction = 'above' and m.value >= t.amber then 'amber'
            when t.direction = 'below' and m.value <= t.red then 'red'
            when t.direction = 'below' and m.value <= t.amber then 'amber'
            else 'green' end as status,
       m.detail,
       now() as measured_at
from measured m
left join lateral (
    select * from {SCHEMA}.thresholds th
    where th.check_name = m.check_name and th.scope in (m.system, '*')
    order by th.scope = '*' limit 1
) t on true;

create or replace view {SCHEMA}.pipeline_health as
select system,
       case max(case status when 'red' then 2 when 'amber' then 1 else 0 end)
            when 2 then 'red' when 1 then 'amber' else 'green' end as status,
       count(*) filter (where status = 'red') as red_checks,
       count(*) filter (where status = 'amber') as amber_checks,
       count(*) as checks,
       coalesce(string_agg(format('%s %s/%s: %s', upper(status), subject, check_name, detail), '; '
                           order by status desc, subject, check_name)
                filter (where status <> 'green'), 'all checks green') as summary,
       now() as measured_at
from {SCHEMA}.pipeline_health_checks
group by system
"""


def ensure_monitoring(conn: psycopg.Connection, settings: Monitoring, sources: tuple[Source, ...]) -> None:
    """Create (or update) the monitoring tables and views, and load thresholds and SLAs into them.

    Idempotent and cheap; every monitoring entry point calls it first, so a fresh warehouse
    gets the health view on the first check.
    """
    conn.execute(OPS_DDL)
    ensure_ops(conn)  # the sync-back tables the flow checks read (the engine owns their DDL)
    conn.execute(CHECKS_DDL)
    conn.execute(TABLES_DDL)
    rows: list[tuple[Any, ...]] = [
        (t.check, t.scope, t.amber, t.red, t.direction) for t in settings.thresholds
    ]
    # The source registry's SLA is the freshness threshold of each source: warn -> amber, error -> red.
    rows += [
        ("last_success_age_h", s.name, s.freshness.warn_after_hours, s.freshness.error_after_hours, "above")
        for s in sources
    ]
    conn.execute(f"delete from {SCHEMA}.thresholds")
    conn.execute(f"delete from {SCHEMA}.sync_targets")
    registry = load_targets()
    with conn.cursor() as cur:
        cur.executemany(f"insert into {SCHEMA}.thresholds values (%s, %s, %s, %s, %s)", rows)
        cur.executemany(
            f"insert into {SCHEMA}.sync_targets values (%s, %s, %s)",
            [(f.name, t, registry.target(t).system) for f in registry.flows for t in f.targets],
        )
        cur.executemany(
            f"insert into {SCHEMA}.settings values (%s, %s) "
            "on conflict (name) do update set value = excluded.value",
            [
                ("volume_lookback_runs", settings.volume.lookback_runs),
                ("volume_min_history", settings.volume.min_history),
            ],
        )
    for ddl in (SOURCE_CHECKS_SQL, FLOW_CHECKS_SQL, WAREHOUSE_CHECKS_SQL, HEALTH_SQL):
        conn.execute(ddl)
    conn.commit()


def health_checks(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every row of ``monitoring.pipeline_health_checks`` as dicts, worst first."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"select * from {SCHEMA}.pipeline_health_checks "
            "order by case status when 'red' then 0 when 'amber' then 1 else 2 end, "
            "system, subject, check_name"
        ).fetchall()


def pipeline_health(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """``{system: {status, red_checks, amber_checks, checks, summary}}`` from the health view."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(f"select * from {SCHEMA}.pipeline_health order by system").fetchall()
    return {r.pop("system"): r for r in rows}


def measure_push_latency(conn: psycopg.Connection) -> int:
    """End-to-end latency of every finished flow run not yet measured, per target: for each change
    the target acknowledged in that run (``ops.sync_outbox`` rows ``acked`` by it), the time from
    the newest source change of that customer (``marts.customer_crosswalk.source_updated_at``)
    before the acknowledgement to the acknowledgement itself. A change older than the pipeline
    (made before the first extract of its source, as on an initial load) counts from that first
    extract: it could not have been pushed earlier. Returns how many run/target pairs were measured
    (a target that acknowledged nothing in a run is measured with no records)."""
    if not conn.execute("select to_regclass('marts.customer_crosswalk') is not null").fetchone()[0]:
        return 0
    measured = conn.execute(
        f"""
        insert into {SCHEMA}.push_latency
        select r.run_id, r.flow, t.target, r.finished_at, count(l.latency),
               percentile_cont(0.5) within group (order by l.latency),
               percentile_cont(0.95) within group (order by l.latency),
               max(l.latency)
        from {OPS_SCHEMA}.sync_runs r
        join {SCHEMA}.sync_targets t on t.flow = r.flow
        left join lateral (
            select extract(epoch from o.updated_at - max(greatest(x.source_updated_at, f.first_extract))) / 60
                   as latency
            from {OPS_SCHEMA}.sync_outbox o
            join marts.customer_crosswalk x
              on x.customer_key = o.customer_key and x.source_updated_at <= o.updated_at
            join (select source, min(started_at) as first_extract from {OPS_SCHEMA}.extract_runs
                  group by source) f on f.source = x.source_system
            where o.last_run_id = r.run_id and o.status = 'acked' and o.target = t.target
            group by o.id, o.updated_at
        ) l on true
        where r.finished_at is not null and not r.dry_run
          and not exists (select 1 from {SCHEMA}.push_latency m where m.run_id = r.run_id)
        group by r.run_id, r.flow, t.target, r.finished_at
        """
    ).rowcount
    conn.commit()
    return measured
