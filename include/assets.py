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

#: Mart Assets by name, for registries that name their triggers (the target registry).
MART_ASSETS = {asset.name: asset for asset in (DIM_CUSTOMER, CUSTOMER_CROSSWALK)}
