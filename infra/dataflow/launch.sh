#!/usr/bin/env bash
# Launch `finpulse stream` on Google Cloud Dataflow with GPU workers.
#
#   PROJECT=my-proj REGION=us-central1 BUCKET=gs://my-bucket KAFKA=broker1:9092 infra/dataflow/launch.sh
#
# Stream only: backfill reads archives with local file I/O, which Dataflow workers do not share
# (run backfills locally, with --direct_num_workers, or on Flink with a shared volume).
#
# Needs: gcloud auth (application default credentials), the Dataflow API, a bucket, and the
# worker image pushed to Artifact Registry (IMAGE; built from infra/Dockerfile with the CUDA
# base, see below). Never run from this repository's CI: no GCP access there (docs/DEPLOY.md).
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET (gs://...)}"
LAKE=${LAKE:-$BUCKET/finpulse/lake}            # workers write the lake directly: it must be gs:// or s3://
IMAGE=${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/finpulse/finpulse-worker:0.1.0}
# GPU: one L4 per g2 VM; the NVIDIA driver is installed by Dataflow. For T4: n1-standard-8 + nvidia-tesla-t4.
GPU_TYPE=${GPU_TYPE:-nvidia-l4}
GPU_COUNT=${GPU_COUNT:-1}
MACHINE=${MACHINE:-g2-standard-8}
MAX_WORKERS=${MAX_WORKERS:-8}
# Either a custom SDK container (IMAGE, recommended: torch+CUDA and the model baked in) or
# REQUIREMENTS=1 to stage requirements at start-up (slow worker start, CPU-only torch wheels unless pinned).
REQUIREMENTS=${REQUIREMENTS:-0}

#   docker build -f infra/Dockerfile -t "$IMAGE" \
#     --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 . && docker push "$IMAGE"

BEAM_ARGS=(
  --runner=DataflowRunner
  --project="$PROJECT" --region="$REGION"
  --temp_location="$BUCKET/finpulse/tmp" --staging_location="$BUCKET/finpulse/staging"
  --job_name="finpulse-stream"             # one job per lake: Dataflow refuses a second active job of this name
  --experiments=use_runner_v2
  --machine_type="$MACHINE" --max_num_workers="$MAX_WORKERS" --autoscaling_algorithm=THROUGHPUT_BASED
  --dataflow_service_options="worker_accelerator=type:$GPU_TYPE;count:$GPU_COUNT;install-nvidia-driver"
  # Keep Dataflow's default of one SDK process per vCPU: the GIL caps one process at roughly
  # 1,300 posts/s of parsing/row building (docs/SCALING.md), so 8 processes feed one GPU. On CUDA
  # the model handler shares one model copy per VM by default (large_model); see docs/SCALING.md.
  --number_of_worker_harness_threads=12   # >= partitions per worker: each thread polls one partition
)
if [[ "$REQUIREMENTS" == 1 ]]; then
  root="$(cd "$(dirname "$0")/../.." && pwd)"
  pip wheel --no-deps -w "$root/dist" "$root" >/dev/null
  BEAM_ARGS+=(--extra_package="$root/dist/finpulse-0.1.0-py3-none-any.whl" --requirements_file="$root/infra/dataflow/requirements.txt")
else
  BEAM_ARGS+=(--sdk_container_image="$IMAGE" --sdk_location=container)
fi

: "${KAFKA:?set KAFKA (bootstrap host:port list)}"
exec finpulse stream --bootstrap "$KAFKA" --topics "${TOPICS:-news,social}" --lake "$LAKE" --device cuda \
  -- "${BEAM_ARGS[@]}" --streaming --enable_streaming_engine
