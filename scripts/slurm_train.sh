#!/usr/bin/env bash
# Train one style on several nodes with SLURM:   sbatch scripts/slurm_train.sh style=starry_night [key=value ...]
#
# One task per GPU; Lightning reads the SLURM environment (ranks, master address) itself. On preemption
# or the time limit SLURM sends SIGUSR1 90 s early: Lightning saves hpc_ckpt_N.ckpt into the run folder
# and requeues the job (SLURMEnvironment(auto_requeue=True), its default). The requeued job runs this
# same script with the same run folder and ckpt_path=last, which takes the run folder's newest
# checkpoint (that one, or checkpoints/last.ckpt if newer), so it continues exactly where it stopped.
# SIGTERM (scancel) saves checkpoints/last.ckpt.
#SBATCH --job-name=fststyle
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --output=outputs/slurm-%j.log
set -euo pipefail

# The run folder is fixed per job (not per start), so that a requeued job finds its last.ckpt.
RUN_DIR="outputs/slurm/${SLURM_JOB_ID}"

srun python -m fststyle.train \
    trainer=ddp \
    trainer.devices="${SLURM_NTASKS_PER_NODE}" \
    trainer.num_nodes="${SLURM_NNODES}" \
    data.num_workers="${SLURM_CPUS_PER_TASK}" \
    ckpt_path=last \
    hydra.run.dir="${RUN_DIR}" \
    "$@"
