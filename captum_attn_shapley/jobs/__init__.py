"""Dataset jobs: every example of a Parquet, CSV or JSON-lines file explained by the package's methods,
in shards that the local engine, Ray or torchrun compute bit-identically and that a rerun resumes
(:func:`explain_dataset`; see :doc:`the dataset jobs guide </jobs>`)."""

from captum_attn_shapley.jobs.api import ENGINES, JobResult, explain_dataset
from captum_attn_shapley.jobs.shards import (
    JobStatus,
    Shard,
    check_manifest,
    job_status,
    mark_success,
    pending_shards,
    plan_shards,
    run_shard,
    write_manifest,
)
from captum_attn_shapley.jobs.spec import JobSpec

__all__ = [
    "ENGINES",
    "JobResult",
    "JobSpec",
    "JobStatus",
    "Shard",
    "check_manifest",
    "explain_dataset",
    "job_status",
    "mark_success",
    "pending_shards",
    "plan_shards",
    "run_shard",
    "write_manifest",
]
