"""A nightly batchtts job split over shards with Airflow's dynamic task mapping, then merged.

Copy this file into the DAGs folder of an Airflow (2.4 or later) whose workers
have batchtts installed and a folder every worker can write (a shared volume).
Set the Airflow Variables ``batchtts_manifest`` and ``batchtts_out`` (paths on
that volume) and ``batchtts_limits_url`` (``redis://HOST:6379/0``: the shards
share the account's limits), and the Variable ``smallest_api_key`` (or a secrets
backend behind it). ``SHARDS`` tasks run ``batchtts run ... --shard K/SHARDS``;
the merge runs when they are all done, whatever their exit status (a shard
stopped by its deadline, exit 4, is marked skipped and leaves pending rows: the
merge lists them and exits 4 too).
"""

from __future__ import annotations

import pendulum
from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

SHARDS = 8
ENV = {
    "SMALLEST_API_KEY": "{{ var.value.smallest_api_key }}",
    "BATCHTTS_LIMITS_URL": "{{ var.value.batchtts_limits_url }}",
}
RUN = (
    "batchtts run {{ var.value.batchtts_manifest }} --out {{ var.value.batchtts_out }} "
    "--shard {shard}/{shards} --deadline 5h --log-format json"
)

with DAG(
    dag_id="batchtts_shards",
    schedule="0 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two nights never write one folder at once
    tags=["batchtts"],
) as dag:
    shards = BashOperator.partial(
        task_id="shard",
        env=ENV,
        append_env=True,
        retries=2,  # a shard that is killed or has failed rows (exit 1) is run again: it resumes its part
        skip_on_exit_code=[4],  # its --deadline stopped it: pending rows stay for tomorrow, no retry
    ).expand(bash_command=[RUN.replace("{shard}", str(k)).replace("{shards}", str(SHARDS)) for k in range(SHARDS)])

    merge = BashOperator(
        task_id="merge",
        bash_command="batchtts merge {{ var.value.batchtts_out }}",
        append_env=True,
        trigger_rule="all_done",  # merge what the shards did, even when one stopped early
    )

    shards >> merge
