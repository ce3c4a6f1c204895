#!/bin/sh
# The three code folders are layers: src/ (the biLM) includes only src/, train/ (what
# training adds) src/ and train/, tools/ (the commands) any of them. An include that
# runs back up is reported with its file and line, and the check fails.
cd "$(dirname "$0")/.."
status=0
check() { # folder, the folders it may include from
    dir=$1
    shift
    for file in "$dir"/*.[ch]; do
        grep -n '^#include "' "$file" | while IFS= read -r line; do
            header=$(printf '%s\n' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
            found=0
            for allowed in "$@"; do [ -e "$allowed/$header" ] && found=1; done
            if [ $found -eq 0 ]; then
                echo "check-layers: $file:${line%%:*}: includes \"$header\", which is not in $*" >&2
                echo x
            fi
        done
    done
}
bad=$( { check src src; check train src train; check tools src train tools; } | wc -l)
[ "$bad" -eq 0 ] || status=1
[ $status -eq 0 ] && echo "check-layers: includes point downward (tools -> train -> src)"
exit $status
