"""Advance the sandbox's clock by one step: what a day of business does to the source systems.

A tick is deterministic per (seed, step) given the same starting state; only its timestamps come
from the wall clock (``now``, UTC), because that is what incremental extracts key on.
Each tick:

- adds new customers (into some systems, with their orders, tickets, ...),
- edits existing records in ONE system (a call-center agent changes a phone, a CRM rep an email,
  finance a contact number, legal an archive's email),
- books new ERP orders and invoice payments, opens and closes call-center tickets,
- drops a new marketing lead file,
- purges a few OA customer archives (with their contract approvals) and a few other approvals:
  OA is synced in full, so only a full sync notices a record is gone,
- appends the ground truth (new customers, new links, and every edit and delete in ``changes.csv``),
- publishes change events for the CRM and call-center records it created or changed (when
  ``C360_SANDBOX_REDIS_URL`` is set; see :mod:`include.sandbox.events`).
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg

from include import config
from include.sandbox import phones, stores
from include.sandbox.changes import CHANGE_COLUMNS, append_changes, purge
from include.sandbox.events import EVENT_SOURCES, ChangePublisher
from include.sandbox.generator import flush, marketing_dir
from include.sandbox.marketing import FORMATS, Campaign, write_campaign_file
from include.sandbox.records import Batch, Projector, Sequences
from include.sandbox.world import CustomerFactory, Vocabulary, customer_from_row, customer_row

EDITABLE_SYSTEMS = ("crm", "erp", "oa", "callcenter")
__all__ = ["CHANGE_COLUMNS", "tick"]


def _pick(rng: random.Random, keys: list[str], k: int) -> list[str]:
    return rng.sample(keys, min(k, len(keys)))


def tick(step: int, seed: int | None = None, erp_url: str | None = None, now: datetime | None = None) -> dict:
    """Apply tick ``step``; returns counts of what changed plus the edited system."""
    state = stores.read_state()
    seed = state["seed"] if seed is None else seed
    erp_url = erp_url or config.erp_url()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(f"{seed}:tick:{step}")
    vocab = Vocabulary(seed)
    factory = CustomerFactory(vocab, now)
    seq = Sequences(**state["sequences"])
    projector = Projector(vocab, factory, seq, now)
    scale = state["customers"]
    n_new, n_edit, n_facts = max(2, scale // 200), max(1, scale // 500), max(2, scale // 200)
    counts: Counter[str] = Counter()
    truth = config.ground_truth_dir()

    # Existing customers: company names stay unique; a few re-register through marketing.
    total = state["next_customer"] - 1
    rereg_at = set(rng.sample(range(total), min(total, max(5, scale // 1000))))
    returning = []
    with open(truth / "customers.csv", newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if row["kind"] == "company":
                factory.company_names.add(row["name"])
            if i in rereg_at:
                returning.append(customer_from_row(row))

    apps = stores.connect_apps()
    erp = psycopg.connect(erp_url)
    keys = {
        "crm": [r[0] for r in apps.execute("select id from crm_accounts order by id")],
        "oa": [r[0] for r in apps.execute("select archive_id from oa_customer_archive order by archive_id")],
        "callcenter": [
            r[0] for r in apps.execute("select caller_id from callcenter_callers order by caller_id")
        ],
        "erp": [r[0] for r in erp.execute("select cust_no from erp.customer_master order by cust_no")],
    }
    for space, values in keys.items():
        projector.taken[space] = set(values)

    campaign = Campaign(f"MKT{now:%Y%m%d}-T{step:04d}", rng.choice(FORMATS), now - timedelta(days=1), now)
    projector.campaigns = [campaign]
    batch = Batch()
    new_customers = []
    for number in range(state["next_customer"], state["next_customer"] + n_new):
        c = factory.make(rng, number)
        c.created_at = now
        new_customers.append(c)
        projector.project(rng, c, batch)
    for c in returning:
        projector.marketing_lead(rng, c, batch)

    # Edits in one system.
    system = rng.choice(EDITABLE_SYSTEMS)
    changes: list[tuple] = []
    for key in sorted(_pick(rng, keys[system], n_edit)):
        if system == "callcenter":
            old = apps.execute("select phone from callcenter_callers where caller_id = ?", (key,)).fetchone()[
                0
            ]
            new = phones.format_mobile(phones.make_mobile(rng), "digits")
            apps.execute(
                "update callcenter_callers set phone = ?, updated_at = ? where caller_id = ?",
                (new, stores.cc_ts(now), key),
            )
            projector.cc_change(rng, key, "phone", old, new, now, batch)
            projector.cc_ticket(rng, key, now, batch, category="contact_change")
            changes.append((now.isoformat(), "callcenter", "callers", key, "phone", new, "update"))
        elif system == "crm":
            new = factory.personal_email(rng)
            apps.execute(
                "update crm_accounts set email = ?, updated_at = ?, updated_by = ? where id = ?",
                (new, stores.crm_ts(now), rng.choice(vocab.user_names), key),
            )
            changes.append((now.isoformat(), "crm", "accounts", key, "email", new, "update"))
        elif system == "oa":
            new = factory.personal_email(rng)
            apps.execute(
                "update oa_customer_archive set contact_email = ?, updated_at = ? where archive_id = ?",
                (new, stores.oa_ts(now), key),
            )
            changes.append((now.isoformat(), "oa", "customer_archive", key, "contact_email", new, "update"))
        else:
            new = phones.format_mobile(phones.make_mobile(rng), "dashes")
            erp.execute(
                "update erp.customer_master set contact_tel = %s, modified_time = %s where cust_no = %s",
                (new, now, key),
            )
            changes.append((now.isoformat(), "erp", "customer_master", key, "contact_tel", new, "update"))
    counts[f"edited_{system}"] = len(changes)

    # Day-to-day business: orders, payments, tickets.
    for cust_no in sorted(_pick(rng, keys["erp"], n_facts)):
        projector.erp_order(rng, cust_no, rng.random() < 0.4, now, batch)
    unpaid = [
        r[0]
        for r in erp.execute(
            "select invoice_no from erp.invoices where status in ('issued', 'overdue', 'partial')"
            " order by invoice_no"
        )
    ]
    paid = sorted(_pick(rng, unpaid, n_facts))
    erp.execute(
        "update erp.invoices set paid_amount = amount, paid_date = %s, status = 'paid', modified_time = %s"
        " where invoice_no = any(%s)",
        (now.date(), now, paid),
    )
    counts["erp_invoices_paid"] = len(paid)
    for caller_id in sorted(_pick(rng, keys["callcenter"], n_facts)):
        projector.cc_ticket(rng, caller_id, now, batch)
    open_tickets = [
        r[0] for r in apps.execute("select ticket_id from callcenter_tickets where status = 'open'")
    ]
    closing = sorted(_pick(rng, sorted(open_tickets), n_facts))
    apps.executemany(
        "update callcenter_tickets set status = 'closed', closed_at = ?, updated_at = ? where ticket_id = ?",
        [(stores.cc_ts(now), stores.cc_ts(now), t) for t in closing],
    )
    counts["callcenter_tickets_closed"] = len(closing)

    # Purges in OA, from their own generator so the rest of the tick is what it was before purges.
    purge_rng = random.Random(f"{seed}:tick:{step}:purge")
    n_purge = max(1, scale // 1000)
    edited = {c[3] for c in changes} if system == "oa" else set()
    archives = sorted(_pick(purge_rng, [k for k in keys["oa"] if k not in edited], n_purge))
    tables = stores.app_tables()
    cascade = []
    if archives:
        marks = ", ".join("?" * len(archives))
        cascade = [
            r[0]
            for r in apps.execute(
                f"select approval_id from oa_contract_approvals where archive_id in ({marks})"
                " order by approval_id",
                archives,
            )
        ]
    cascaded = set(cascade)
    others = [
        r[0]
        for r in apps.execute("select approval_id from oa_contract_approvals order by approval_id")
        if r[0] not in cascaded
    ]
    approvals = cascade + sorted(_pick(purge_rng, others, n_purge))
    deletes = purge(apps, tables["oa_customer_archive"], archives, now)
    deletes += purge(apps, tables["oa_contract_approvals"], approvals, now)
    counts["oa_customer_archive_deleted"] = len(archives)
    counts["oa_contract_approvals_deleted"] = len(approvals)

    # Change events: every CRM and call-center record this tick created or changed.
    events: dict[tuple[str, str], list[str]] = {}
    for table_name, rows in batch.apps.items():
        table = tables[table_name]
        if table.system in EVENT_SOURCES:
            position = table.fields.index(table.key)
            events.setdefault((table.system, table.entity), []).extend(r[position] for r in rows)
    for change in changes:
        if change[1] in EVENT_SOURCES:
            events.setdefault((change[1], change[2]), []).append(change[3])
    events.setdefault(("callcenter", "tickets"), []).extend(closing)

    with (
        open(truth / "customers.csv", "a", newline="", encoding="utf-8") as cf,
        open(truth / "links.csv", "a", newline="", encoding="utf-8") as lf,
    ):
        csv.writer(cf).writerows(customer_row(c) for c in new_customers)
        links = csv.writer(lf)
        counts.update(batch.counts)
        flush(batch, apps, erp, links)
        if campaign.leads:
            leads = write_campaign_file(rng, campaign, marketing_dir())
            links.writerows(("marketing", "leads", lead_id, tc) for lead_id, tc in leads)
            counts["marketing_leads"] = len(leads)
    append_changes([*changes, *deletes])
    apps.commit()
    erp.commit()
    apps.close()
    erp.close()
    # After the commit, so a consumer woken by the event reads the change.
    publisher = ChangePublisher.from_env()
    for (source, entity), ids in sorted(events.items()):
        publisher.publish(source, entity, sorted(set(ids)), now)
    publisher.close()
    counts["new_customers"] = len(new_customers)
    state.update(
        next_customer=state["next_customer"] + n_new,
        sequences=asdict(seq),
        ticks=[*state["ticks"], {"step": step, "seed": seed, "at": now.isoformat(), "edited": system}],
    )
    stores.write_state(state)
    return {"edited_system": system, **dict(sorted(counts.items()))}
