"""Operator commands for the sync-back flows (warehouse from ``C360_WAREHOUSE_URL``).

    python -m include.push erase <customer_key> --reason "PIPL request 2026-118"
    python -m include.push suppress <phone or email> --reason unsubscribed
    python -m include.push runs [--flow crm_golden_contacts] [--limit 20]

``erase`` records the deletion request and anonymises the warehouse at once; the next
``push_flows`` run takes it to every system. ``suppress`` adds a contact to the marketing
suppression list the lead-screening flow reads.
"""

from __future__ import annotations

import argparse
import re
import sys

import phonenumbers
import psycopg

from include.config import warehouse_url
from include.push.engine import ensure_ops

REASONS = ("unsubscribed", "no_consent", "complaint")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_contact(contact: str) -> str:
    """A contact the way staging and the marts hold it: an email lower-cased, a phone (mobile or
    landline, with or without +86) in E.164. Anything else is refused: a suppression that can never
    match a record would silently suppress nobody."""
    text = contact.strip()
    if "@" in text:
        if not _EMAIL.match(text):
            raise ValueError(f"{contact!r} is not an email address")
        return text.lower()
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(f"{contact!r} is neither an email address nor a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.push", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    erase = sub.add_parser("erase", help="record a personal-information deletion request")
    erase.add_argument("customer_key")
    erase.add_argument("--reason", required=True, help="the request's reference, kept with it")
    suppress = sub.add_parser(
        "suppress",
        help="never market to this phone or email again (its channel, for every lead of its customer)",
    )
    suppress.add_argument("contact")
    suppress.add_argument("--reason", required=True, choices=REASONS)
    runs = sub.add_parser("runs", help="the latest rows of ops.sync_runs")
    runs.add_argument("--flow")
    runs.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)

    with psycopg.connect(warehouse_url()) as conn:
        ensure_ops(conn)
        if args.command == "erase":
            from include.push.erasure import request_erasure

            try:
                counts = request_erasure(conn, args.customer_key, args.reason)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"erasure {counts.pop('request_id')} recorded for {args.customer_key}; anonymised rows:")
            width = max(map(len, counts), default=0)
            for relation, n in counts.items():
                print(f"  {relation:<{width}}  {n:>6}")
            print("the next push_flows run removes the data from every system")
        elif args.command == "suppress":
            try:
                contact = normalise_contact(args.contact)
            except ValueError as exc:
                print(f"error: {exc}; nothing suppressed", file=sys.stderr)
                return 2
            conn.execute(
                "insert into ops.contact_suppressions (contact, reason) values (%s, %s) "
                "on conflict do nothing",
                (contact, args.reason),
            )
            conn.commit()
            print(f"{contact} suppressed ({args.reason})")
        else:
            rows = conn.execute(
                "select started_at, flow, status, considered, skipped_unchanged, sent, succeeded, rejected, "
                "conflicts, duration_seconds from ops.sync_runs "
                "where %(flow)s::text is null or flow = %(flow)s order by started_at desc limit %(limit)s",
                {"flow": args.flow, "limit": args.limit},
            ).fetchall()
            header = (
                "started",
                "flow",
                "status",
                "considered",
                "unchanged",
                "sent",
                "ok",
                "rejected",
                "conflicts",
                "s",
            )
            print("  ".join(header))
            for row in rows:
                print("  ".join(str(v) if i else v.strftime("%Y-%m-%d %H:%M:%S") for i, v in enumerate(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
