"""The Assets that tie the DAGs together: extracts -> dbt -> pushes and BI refreshes."""

from __future__ import annotations

from airflow.sdk import Asset


def raw_asset(source: str) -> Asset:
    """Emitted by ``extract_<source>`` whenever it lands a batch in ``raw_<source>``."""
    return Asset(name=f"raw_{source}", uri=f"c360://warehouse/raw_{source}", group="raw")


#: Emitted by the dbt DAG once the public customer marts are rebuilt and tested.
DIM_CUSTOMER = Asset(name="marts.dim_customer", uri="c360://warehouse/marts/dim_customer", group="marts")
CUSTOMER_CROSSWALK = Asset(
    name="marts.customer_crosswalk", uri="c360://warehouse/marts/customer_crosswalk", group="marts"
)

#: Emitted by ``refresh_bi`` when the dashboards' data has been republished from fresh sources.
BI_DASHBOARDS = Asset(name="bi.dashboards", uri="c360://bi/dashboards", group="bi")
#: Emitted with them: the customers that need attention today (churn risk, complaint spike, payment due),
#: for the push and alerting work; and the wide BI table.
CUSTOMER_ALERTS = Asset(
    name="marts.customer_alerts", uri="c360://warehouse/marts/customer_alerts", group="marts"
)
CUSTOMER_360 = Asset(name="marts.customer_360", uri="c360://warehouse/marts/customer_360", group="marts")
#: Mart Assets by name, for registries that name their triggers (the target registry).
MART_ASSETS = {
    asset.name: asset for asset in (DIM_CUSTOMER, CUSTOMER_CROSSWALK, CUSTOMER_360, CUSTOMER_ALERTS)
}
