"""The deterministic sandbox generator: one seed and one scale knob fill all five source systems.

``generate(customers=1000, seed=1)`` resets every store and writes the same rows and files for the
same seed, scale and ``as_of``. Customers are made and projected in chunks, so memory stays flat
(apart from marketing leads, which wait for their campaign file) and 1M customers take minutes.
"""

from __future__ import annotations

import csv
import random
import shutil
from collections import Counter
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from include import config
from include.sandbox import stores
from include.sandbox.marketing import make_campaigns, write_campaign_file
from include.sandbox.records import Batch, Projector, Sequences
from include.sandbox.world import CUSTOMER_COLUMNS, CustomerFactory, Vocabulary, customer_row

CHUNK = 5000
LINK_COLUMNS = ("source_system", "entity", "source_record_id", "true_customer_id")


def default_as_of() -> datetime:
    """Today 00:00 UTC."""
    return datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)


def parse_as_of(value: str | date | datetime | None) -> datetime:
    if value is None:
        return default_as_of()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def marketing_dir() -> Path:
    return config.landing_dir() / stores.registry()["marketing"]["landing_dir"]


def flush(batch: Batch, apps, erp, links_writer) -> None:
    for table, rows in batch.apps.items():
        stores.insert_rows(apps, table, rows)
    for table in stores.ERP_TABLES:  # parents first: customer_master, sales_orders, invoices
        stores.copy_erp(erp, table, batch.erp.get(table, []))
    links_writer.writerows(batch.links)
    batch.apps.clear()
    batch.erp.clear()
    batch.links.clear()


def generate(
    customers: int,
    seed: int,
    as_of: str | date | datetime | None = None,
    erp_url: str | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Reset every sandbox store and fill it; returns row counts per table/file kind.

    Writes: ``sandbox_dir()/apps.sqlite`` (CRM, OA, call center), the ERP database at ``erp_url``
    (default ``config.erp_url()``), marketing files under ``landing_dir()/marketing`` and
    ``ground_truth_dir()/customers.csv`` + ``links.csv``.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    as_of_dt = parse_as_of(as_of)
    erp_url = erp_url or config.erp_url()
    rng = random.Random(seed)
    vocab = Vocabulary(seed)
    factory = CustomerFactory(vocab, as_of_dt)
    seq = Sequences()
    projector = Projector(vocab, factory, seq, as_of_dt)
    history_start = as_of_dt - timedelta(days=factory.history_days)
    n_campaigns = max(6, min(40, customers * 3 // 10 // 8000 + 1))
    projector.campaigns = make_campaigns(rng, n_campaigns, history_start, as_of_dt, "MKT")

    truth = config.ground_truth_dir()
    truth.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(marketing_dir(), ignore_errors=True)
    (truth / "changes.csv").unlink(missing_ok=True)  # written by ticks
    apps = stores.reset_apps_db()
    erp = stores.reset_erp(erp_url)
    counts: Counter[str] = Counter()
    track = None
    if progress:
        from rich.progress import track  # noqa: PLC0415 - only the CLI wants a progress bar
    with (
        open(truth / "customers.csv", "w", newline="", encoding="utf-8") as cf,
        open(truth / "links.csv", "w", newline="", encoding="utf-8") as lf,
    ):
        customers_writer, links_writer = csv.writer(cf), csv.writer(lf)
        customers_writer.writerow(CUSTOMER_COLUMNS)
        links_writer.writerow(LINK_COLUMNS)
        starts = range(0, customers, CHUNK)
        for start in track(starts, description="generating") if track else starts:
            batch = Batch()
            for number in range(start + 1, min(start + CHUNK, customers) + 1):
                c = factory.make(rng, number)
                customers_writer.writerow(customer_row(c))
                projector.project(rng, c, batch)
            counts.update(batch.counts)
            flush(batch, apps, erp, links_writer)
        for campaign in projector.campaigns:
            leads = write_campaign_file(rng, campaign, marketing_dir())
            links_writer.writerows(("marketing", "leads", lead_id, tc) for lead_id, tc in leads)
            counts["marketing_leads"] += len(leads)
            counts[f"marketing_files_{campaign.file_format}"] += 1
    apps.commit()
    stores.index_apps_db(apps)
    apps.close()
    stores.finish_erp(erp)
    erp.close()
    counts["customers"] = customers
    stores.write_state(
        {
            "seed": seed,
            "customers": customers,
            "as_of": as_of_dt.isoformat(),
            "next_customer": customers + 1,
            "sequences": asdict(seq),
            "ticks": [],
        }
    )
    return dict(sorted(counts.items()))
