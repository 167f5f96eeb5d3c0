"""Nightly framebeam validation on Dataflow, from Airflow (Cloud Composer).

Not imported by the tests (Airflow is not a framebeam dependency); copy it into your DAGs folder and
set the Airflow Variables below. Needs apache-airflow-providers-apache-beam and -google, and a worker
environment with `framebeam[gcp,video]` installed at the pins of deploy/requirements.txt (the
operator builds the job graph on the Airflow worker; the Dataflow workers run IMAGE).

The alternative without Airflow is Cloud Scheduler hitting the Flex Template launch API: deploy/README.md.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowConfiguration

PROJECT = Variable.get("framebeam_project")  # e.g. my-project
REGION = Variable.get("framebeam_region", default_var="europe-west4")
BUCKET = Variable.get("framebeam_bucket")  # e.g. my-bucket (frames, output and Dataflow temp)
IMAGE = Variable.get("framebeam_image")  # e.g. europe-west4-docker.pkg.dev/my-project/framebeam/framebeam:0.1.0

with DAG(
    dag_id="framebeam_nightly_validation",
    schedule="0 2 * * *",  # 02:00 every night, in the Airflow deployment's time zone
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=15)},
    tags=["framebeam", "dataflow"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="validate_frames",
        runner="DataflowRunner",
        # python3 -m pipelines.flex_template --command=validate --input=... : the Flex Template entry
        # point takes every option as --name=value in any order (the operator renders them so) and
        # submits without blocking; the operator then follows the job by the id Beam logs.
        py_options=["-m"],
        py_file="pipelines.flex_template",
        pipeline_options={
            # framebeam's own parameters: the names in deploy/metadata.json.
            "command": "validate",
            "input": f"gs://{BUCKET}/frames/*.jsonl.gz",
            "output": f"gs://{BUCKET}/framebeam/nightly/{{{{ ds_nodash }}}}",
            "max_errors": "0",
            # Beam / Dataflow flags.
            "project": PROJECT,
            "region": REGION,
            "temp_location": f"gs://{BUCKET}/dataflow/tmp",
            "sdk_container_image": IMAGE,
            "machine_type": "n2-standard-4",
            "max_num_workers": "20",
        },
        py_interpreter="python3",
        py_requirements=None,  # framebeam is installed in the Airflow worker environment already
        dataflow_config=DataflowConfiguration(
            job_name="framebeam-nightly-{{ ds_nodash }}",
            project_id=PROJECT,
            location=REGION,
            wait_until_finished=True,  # the task fails when the Dataflow job fails
        ),
    )
