# Sourced by the project's shell scripts: which Python runs the project's modules.
#
#   python=$(project_python SCRIPT_NAME MODULE...) || exit 1
#
# Picks REPO/.venv/bin/python when it exists (what scripts/setup.sh creates),
# else $PYTHON, else python3, and checks that it imports MODULE... with the
# repository on its path. When it cannot, prints one line on stderr naming the
# Python tried, the missing module and the fix, and returns 1.

project_python() {
    local script=$1
    shift
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    local python
    if [[ -x "${root}/.venv/bin/python" ]]; then
        python="${root}/.venv/bin/python"
    else
        python="${PYTHON:-python3}"
    fi
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "${script}: Python '${python}' not found; run: bash scripts/setup.sh (creates .venv), or set PYTHON=/path/to/python" >&2
        return 1
    fi
    local imports
    imports=$(printf 'import %s; ' "$@")
    local missing
    if ! missing=$(cd "$root" && PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}" "$python" -c "${imports}" 2>&1); then
        missing=$(printf '%s\n' "$missing" | grep -E '^[A-Za-z]*Error' | tail -n 1)
        echo "${script}: ${python} cannot import the project's modules (${missing:-import failed}); run: bash scripts/setup.sh (creates .venv), or set PYTHON to a Python where 'pip install -e .' was run" >&2
        return 1
    fi
    echo "$python"
}
