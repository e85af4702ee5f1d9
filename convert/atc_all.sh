#!/usr/bin/env bash
# Convert the exported ONNX sub-models to Ascend .om files with ATC.
#
#   convert/atc_all.sh [--soc-version SOC] [--model-dir om_model] [--precision MODE]
#                      [--aipp] [--dry-run] [--force]
#
# Every ATC argument comes from `python -m convert.atc_args`, which reads the
# graphs and manifest.json: no shape here is typed by hand. The default
# precision is convert/atc_args.py's DEFAULT_PRECISION. Python: .venv/bin/python
# when it exists, else $PYTHON, else python3. A model whose .om is
# newer than its .onnx and was built with the same SOC / precision / AIPP (as
# recorded in om_manifest.json) is skipped unless --force. Each conversion logs
# to MODEL_DIR/atc_logs/<model>.log; the first failure stops the script.
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SET_ENV="/usr/local/Ascend/ascend-toolkit/set_env.sh"
# shellcheck source=../scripts/project_python.sh
source "${REPO_ROOT}/scripts/project_python.sh"

soc_version=""
model_dir="om_model"
precision=""
aipp=false
dry_run=false
force=false

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "atc_all.sh: $*" >&2
    exit 1
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value; see --help"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --soc-version) need_value "$@"; soc_version=$2; shift 2 ;;
        --model-dir) need_value "$@"; model_dir=$2; shift 2 ;;
        --precision) need_value "$@"; precision=$2; shift 2 ;;
        --aipp) aipp=true; shift ;;
        --dry-run) dry_run=true; shift ;;
        --force) force=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1'; see --help" ;;
    esac
done

# The chip name from `npu-smi info` (e.g. "310B4" in "| 0     310B4     | OK ..."), as "Ascend310B4".
detect_soc() {
    command -v npu-smi >/dev/null 2>&1 || return 1
    local chip
    chip=$(npu-smi info 2>/dev/null | awk '$1 == "|" && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+[A-Za-z0-9]*$/ { print $3; exit }')
    [[ -n $chip ]] || return 1
    echo "Ascend${chip}"
}

detected=$(detect_soc || true)
if [[ -z $soc_version ]]; then
    [[ -n $detected ]] || die "no --soc-version given and npu-smi is not available to detect it; pass e.g. --soc-version Ascend310B4"
    soc_version=$detected
    echo "atc_all.sh: npu-smi reports ${soc_version}"
elif [[ -n $detected && $detected != "$soc_version" ]]; then
    echo "atc_all.sh: warning: building for ${soc_version} but npu-smi reports ${detected}; the .om files will not load on this board" >&2
fi

if ! $dry_run && ! command -v atc >/dev/null 2>&1; then
    die "atc not found on PATH; run: source ${SET_ENV}"
fi
[[ -d $model_dir ]] || die "model dir '${model_dir}' not found; export first with: python convert/export_onnx.py --out ${model_dir}"

python=$(project_python "atc_all.sh" convert.atc_args onnx) || exit 1
args=(--model-dir "$model_dir" --soc-version "$soc_version")
[[ -n $precision ]] && args+=(--precision "$precision")
$aipp && args+=(--aipp)

atc_args() {
    PYTHONPATH="${REPO_ROOT}${PYTHONPATH:+:${PYTHONPATH}}" "$python" -m convert.atc_args "${args[@]}" "$@"
}

plan_args=(--plan)
$dry_run && plan_args+=(--dry-run)
$force && plan_args+=(--force)
plan=$(atc_args "${plan_args[@]}") || exit $?

log_dir="${model_dir}/atc_logs"
$dry_run || mkdir -p "$log_dir"
converted=0
while IFS=$'\t' read -r name action reason command; do
    if [[ $action == skip ]]; then
        if $dry_run; then echo "# ${name}: skip (${reason})"; else echo "atc_all.sh: ${name}: skip (${reason}; --force rebuilds)"; fi
        continue
    fi
    if $dry_run; then
        echo "$command"
        continue
    fi
    log="${log_dir}/${name}.log"
    echo "atc_all.sh: ${name}: converting for ${soc_version} (${reason}), log ${log}"
    started=$SECONDS
    # stdin from /dev/null: ATC must not eat the plan this loop reads.
    if ! (echo "$command" && eval "$command") >"$log" 2>&1 </dev/null; then
        first_error=$(grep -m1 -E '\b[EW][0-9]{5}\b|ERROR' "$log" || true)
        die "ATC failed for ${name}${first_error:+: ${first_error}}; full log: ${log}"
    fi
    atc_args --record "$name"
    converted=$((converted + 1))
    echo "atc_all.sh: ${name}: done in $((SECONDS - started)) s"
done <<<"$plan"

$dry_run || echo "atc_all.sh: ${converted} model(s) converted in ${model_dir} for ${soc_version} (${precision:-default precision}$($aipp && echo ', AIPP'))"
