#!/bin/bash
# Score a model zoo as a Slurm job array: every array task runs one shard of the job.
#
#   sbatch examples/slurm_array.sh                      # 8 tasks, examples/job_list.yaml
#   JOB=my_zoo.yaml sbatch --array=0-63 examples/slurm_array.sh
#
# zerocost reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT (and SLURM_ARRAY_TASK_MIN/STEP,
# so --array=1-8 works too), scores models i, i+n, i+2n, ... of the job's sorted model list
# and appends them to OUT.shard-i-of-n.jsonl. A task that is preempted or times out can be
# resubmitted as it is: it skips what its output already has and redoes a partial last line.
#SBATCH --job-name=zerocost
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=zerocost-%A_%a.log
set -euo pipefail

JOB=${JOB:-examples/job_list.yaml}
ZEROCOST=${ZEROCOST:-zerocost}

# one worker (one model at a time, single-threaded engine) per allocated core
"$ZEROCOST" batch "$JOB" --workers "${SLURM_CPUS_PER_TASK:-1}" --quiet

# When every task is done (e.g. a follow-up job submitted with
# --dependency=afterok:$SLURM_ARRAY_JOB_ID), join the shards and rank the proxies:
#   zerocost merge results/zoo.shard-*-of-8.jsonl -o results/zoo.jsonl
#   zerocost correlate results/zoo.jsonl --truth accuracies.csv --plot results/plots
