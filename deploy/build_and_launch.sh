#!/usr/bin/env bash
# Build the framebeam image, register it as a Dataflow Flex Template, and launch a job from it.
set -euo pipefail

# --- settings: override any of them from the environment --------------------------------------------
PROJECT="${PROJECT:-}"                                   # GCP project id (required)
REGION="${REGION:-europe-west4}"                         # Dataflow + Artifact Registry region
BUCKET="${BUCKET:-}"                                     # gs bucket for the template spec and Dataflow temp (required)
REPOSITORY="${REPOSITORY:-framebeam}"                    # Artifact Registry Docker repository
TAG="${TAG:-$(git -C "$(dirname "$0")/.." describe --always --dirty 2>/dev/null || echo latest)}"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}/framebeam:${TAG}}"
TEMPLATE="${TEMPLATE:-gs://${BUCKET}/framebeam/templates/framebeam-${TAG}.json}"
BUILDER="${BUILDER:-cloudbuild}"                         # cloudbuild | docker
MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-4}"
MAX_WORKERS="${MAX_WORKERS:-20}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-}"                   # worker service account (optional)
# Job parameters (names as in deploy/metadata.json)
COMMAND="${COMMAND:-run}"                                # convert | validate | run
INPUT="${INPUT:-gs://${BUCKET}/frames/*.jsonl.gz}"
OUTPUT="${OUTPUT:-gs://${BUCKET}/framebeam/out/$(date -u +%Y%m%dT%H%M%SZ)}"
EXTRA_PARAMETERS="${EXTRA_PARAMETERS:-}"                 # more, "~"-separated: "mask_labels=gs://b/l.json~crop_png=true"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<USAGE
Usage: PROJECT=my-project BUCKET=my-bucket $0 [build|template|launch|all]

  build      build the image (\$BUILDER: cloudbuild = gcloud builds submit, docker = docker build + push)
  template   gcloud dataflow flex-template build: write the template spec to \$TEMPLATE
  launch     gcloud dataflow flex-template run: start a job (\$COMMAND on \$INPUT -> \$OUTPUT)
  all        build, template, launch (default)

Now: IMAGE=$IMAGE
     TEMPLATE=$TEMPLATE
Settings are the variables at the top of this script; set them in the environment.
USAGE
}

require() {
  [[ -n "${!1}" ]] || { echo "$0: set $1 (e.g. $1=$2)" >&2; usage >&2; exit 2; }
}

build_image() {
  # The Dockerfile reads deploy/requirements.txt: make sure it matches the dev venv first.
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    "$REPO_ROOT/.venv/bin/python" "$REPO_ROOT/deploy/freeze_requirements.py" --check
  fi
  if [[ "$BUILDER" == docker ]]; then
    docker build -f "$REPO_ROOT/deploy/Dockerfile" --build-arg "IMAGE=$IMAGE" -t "$IMAGE" "$REPO_ROOT"
    docker push "$IMAGE"
  else
    # Cloud Build has no --build-arg with --tag: a one-step inline config does the same.
    local config
    config="$(mktemp)"
    cat > "$config" <<CONFIG
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, deploy/Dockerfile, --build-arg, IMAGE=$IMAGE, -t, $IMAGE, .]
images: [$IMAGE]
CONFIG
    gcloud builds submit "$REPO_ROOT" --project "$PROJECT" --region "$REGION" --config "$config"
    rm -f "$config"
  fi
}

build_template() {
  gcloud dataflow flex-template build "$TEMPLATE" \
    --project "$PROJECT" \
    --image "$IMAGE" \
    --sdk-language PYTHON \
    --metadata-file "$REPO_ROOT/deploy/metadata.json"
}

launch_job() {
  local parameters="^~^command=${COMMAND}~input=${INPUT}~output=${OUTPUT}~sdk_container_image=${IMAGE}"
  [[ -z "$EXTRA_PARAMETERS" ]] || parameters+="~${EXTRA_PARAMETERS}"
  local args=(
    --project "$PROJECT" --region "$REGION"
    --template-file-gcs-location "$TEMPLATE"
    --temp-location "gs://${BUCKET}/dataflow/tmp"
    --staging-location "gs://${BUCKET}/dataflow/staging"
    --worker-machine-type "$MACHINE_TYPE"
    --max-workers "$MAX_WORKERS"
    --parameters "$parameters"
  )
  [[ -z "$SERVICE_ACCOUNT" ]] || args+=(--service-account-email "$SERVICE_ACCOUNT")
  gcloud dataflow flex-template run "framebeam-${COMMAND}-$(date -u +%Y%m%d-%H%M%S)" "${args[@]}"
}

main() {
  local step="${1:-all}"
  case "$step" in
    -h|--help|help) usage; return 0 ;;
    build|template|launch|all) ;;
    *) echo "$0: unknown step '$step'" >&2; usage >&2; return 2 ;;
  esac
  require PROJECT my-project
  require BUCKET my-bucket
  case "$step" in
    build) build_image ;;
    template) build_template ;;
    launch) launch_job ;;
    all) build_image; build_template; launch_job ;;
  esac
}

main "$@"
