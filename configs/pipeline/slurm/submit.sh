#!/bin/bash
# Submit the pipeline as SLURM jobs, each step waiting for the one before:
#   extract (array) -> merge + rdm -> searchlight (array) -> merge
#   bash configs/pipeline/slurm/submit.sh [EXTRACT_TASKS [SEARCHLIGHT_TASKS]]
# Environment: PIPELINE, DATA, OUT, MODEL, NET2BRAIN as in the .sbatch files (exported to the jobs).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXTRACT_TASKS=${1:-8}
SEARCHLIGHT_TASKS=${2:-16}
# SLURM opens each job's log (#SBATCH --output=logs/...) before the job starts, so its
# folder must exist already; the outputs' folders are created by the commands themselves
mkdir -p logs
extract=$(sbatch --parsable --array=0-$((EXTRACT_TASKS - 1)) "$HERE/extract.sbatch")
merged=$(sbatch --parsable --dependency=afterok:"$extract" --export=ALL,STEP=extract "$HERE/merge.sbatch")
searchlight=$(sbatch --parsable --dependency=afterok:"$merged" --array=0-$((SEARCHLIGHT_TASKS - 1)) "$HERE/searchlight.sbatch")
maps=$(sbatch --parsable --dependency=afterok:"$searchlight" --export=ALL,STEP=searchlight "$HERE/merge.sbatch")
echo "submitted: extract $extract, merge $merged, searchlight $searchlight, maps $maps"
