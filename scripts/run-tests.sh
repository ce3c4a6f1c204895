#!/bin/sh
# Runs cmocka suites (the programs named on the command line) one after the other,
# showing their output, and ends with one line over all of them:
#
#     N passed, N failed, N skipped
#
# counting test cases from each suite's own result lines.  A suite that exits non-zero
# without having reported as many failures (a crash, a sanitizer abort, a kill, a leak
# report at exit) counts every test it left without a result as failed, and at least
# one; so does a suite still running after $ELMO_SUITE_TIMEOUT seconds (default 1200),
# which is stopped.  Exits 1 when anything failed.  Called by `make test`; POSIX sh.
set -u

[ $# -gt 0 ] || { echo "run-tests: no suites given" >&2; exit 2; }

# The result lines are parsed from cmocka's standard output format.
CMOCKA_MESSAGE_OUTPUT=stdout
export CMOCKA_MESSAGE_OUTPUT

work=$(mktemp -d "${TMPDIR:-/tmp}/elmo-run-tests.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
skipped=0
failed_suites=""
for t in "$@"; do
    case $t in
        */*) cmd=$t ;;
        *) cmd=./$t ;;
    esac
    echo "== $t"
    echo 127 >"$work/rc" # stays if the suite cannot even be started
    # a hung suite is stopped (exit status 124) rather than hanging the whole run
    { timeout "${ELMO_SUITE_TIMEOUT:-1200}" "$cmd" 2>&1; echo $? >"$work/rc"; } | tee "$work/log"
    rc=$(cat "$work/rc")
    # passed failed skipped, and a note when the exit status added failures
    counts=$(awk -v rc="$rc" '
        BEGIN { planned = 0; running = 0; p = 0; f = 0; s = 0; in_summary = 0 }
        index($0, "[==========] Running ") == 1 { planned += $3; running = 1; in_summary = 0; next }
        /^\[==========\] [0-9]+ test\(s\) run\./ { in_summary = 1; next }
        in_summary { next } # the summary repeats the per-test lines
        index($0, "[       OK ] ") == 1 { p++; next }
        index($0, "[  FAILED  ] ") == 1 { f++; next }
        index($0, "[  ERROR   ] ") == 1 && index($0, "[  ERROR   ] --- ") != 1 { f++; next }
        index($0, "[  SKIPPED ] ") == 1 { s++; next }
        END {
            note = ""
            missing = planned - (p + f + s)
            if (missing > 0) {
                f += missing
                note = missing " of " planned " test(s) without a result, counted as failed"
            } else if (rc != 0 && f == 0) {
                f = 1
                note = "no test failed, but the suite did: counted as 1 failed"
            } else if (!running) {
                f += 1
                note = "no cmocka output: counted as 1 failed"
            }
            print p, f, s, note
        }' "$work/log")
    p=${counts%% *}; rest=${counts#* }
    f=${rest%% *}; rest=${rest#* }
    s=${rest%% *}; note=${rest#"$s"}; note=${note# }
    if [ "$rc" -ne 0 ] || [ -n "$note" ]; then
        if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
            how="killed by signal $((rc - 128))"
        else
            how="exit status $rc"
        fi
        echo "run-tests: $t: $how${note:+; $note}"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    [ "$f" -eq 0 ] || failed_suites="$failed_suites $t"
done

[ -z "$failed_suites" ] || echo "run-tests: failures in:$failed_suites"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
