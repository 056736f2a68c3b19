#!/usr/bin/env bash
# Deploys python-executor to Cloud Run: the seed's gcloud commands, updated
# for a warm pool. Usage: PROJECT_ID=my-project ./deploy/cloudrun/deploy.sh
# Not run from this repository's CI (no Google Cloud access there).
set -euo pipefail
: "${PROJECT_ID:?set PROJECT_ID}"
SERVICE_NAME=${SERVICE_NAME:-python-executor}
REGION=${REGION:-us-central1}
IMAGE=${IMAGE:-gcr.io/$PROJECT_ID/$SERVICE_NAME}
POOL_SIZE=${POOL_SIZE:-2}
# gen2 (a microVM with a full Linux kernel) is where bubblewrap can build
# namespaces; gen1 is gVisor, which refuses nested sandboxes: the server then
# runs at isolation "basic" (set REQUIRE_ISOLATION=basic to deploy there), and
# only as root: build the image with USER 0 for gen1, or the server refuses to
# start (without Landlock its jobs would share its uid; see SECURITY.md).
EXECUTION_ENVIRONMENT=${EXECUTION_ENVIRONMENT:-gen2}
REQUIRE_ISOLATION=${REQUIRE_ISOLATION:-namespaces}

gcloud builds submit --project "$PROJECT_ID" --tag "$IMAGE" .

# --concurrency: the pool runs POOL_SIZE jobs at once and queues a few more;
#   sending more to one instance only queues them there, so let Cloud Run
#   start another instance instead.
# --min-instances 1 and --no-cpu-throttling: the warm pool is the point; an
#   instance that scales to zero or loses its CPU between requests pays the
#   interpreter start-up again.
# --startup-probe on /health: the server listens only once its pool is warm.
# --cpu 2 --memory 2Gi: two warm workers at about 55 MiB each, plus up to
#   --memory-mb per running job.
gcloud run deploy "$SERVICE_NAME" \
  --project "$PROJECT_ID" \
  --image "$IMAGE" \
  --region "$REGION" \
  --execution-environment "$EXECUTION_ENVIRONMENT" \
  --allow-unauthenticated \
  --cpu 2 --memory 2Gi \
  --no-cpu-throttling \
  --min-instances 1 --max-instances 10 \
  --concurrency "$((POOL_SIZE * 2))" \
  --timeout 60 \
  --set-env-vars "PYEXEC_POOL_SIZE=$POOL_SIZE,PYEXEC_QUEUE_SIZE=$POOL_SIZE,PYEXEC_REQUIRE_ISOLATION=$REQUIRE_ISOLATION" \
  --startup-probe "httpGet.path=/health,initialDelaySeconds=0,periodSeconds=1,failureThreshold=60,timeoutSeconds=1"

gcloud run services describe "$SERVICE_NAME" --project "$PROJECT_ID" --region "$REGION" --format 'value(status.url)'
# API keys: store them in Secret Manager and add
#   --set-secrets PYEXEC_API_KEYS=python-executor-api-keys:latest
