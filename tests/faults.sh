#!/bin/sh
# `make faults`: a fault campaign against `elmo train` and the writing commands.
#   - kill -9 at FAULTS_KILLS (default 20) random moments of a short training run (its
#     checkpoints are made slow by a 21k-word vocabulary), each run continued with --restart
#     until done: the final checkpoint must equal an uninterrupted run's byte for byte, and
#     no temporary file may be left;
#   - SIGTERM / SIGINT at FAULTS_SIGNALS (default 6) random moments: exit 143 / 130 with a
#     checkpoint, then an exact resume;
#   - SIGTERM / SIGINT at FAULTS_EARLY (default 4) moments of a fresh run's setup: either
#     the save directory is left as it was found (here: absent) or it holds a checkpoint;
#   - a second run on a directory in use is refused;
#   - a full disk (ulimit -f) for train, embed, vocab, shard and dump-weights: exit 2 with
#     one line, the earlier result intact, and a resume once there is room;
#   - shard and prepare replacing an earlier set (--force): kill -9 at FAULTS_SET_KILLS
#     (default 12) random moments of each, and (when strace is installed) before every
#     change of a name in the output directory, from a set of this version and from one
#     of the older layout: each time the directory shows the earlier set or the new one,
#     byte for byte, and the next run gives the new set and leaves nothing of the killed one.
# One summary line; exit 1 on any miss. usage: tests/faults.sh [ELMO_BINARY]
# FAULTS_ONLY=sets runs the last part alone.
set -u
cd "$(dirname "$0")/.."
ELMO=${1:-bin/elmo}
KILLS=${FAULTS_KILLS:-20}
SIGNALS=${FAULTS_SIGNALS:-6}
EARLY=${FAULTS_EARLY:-4}
SET_KILLS=${FAULTS_SET_KILLS:-12}
ONLY=${FAULTS_ONLY:-}
if [ "$ONLY" = sets ]; then KILLS=0; SIGNALS=0; EARLY=0; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/elmo-faults.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

injected=0
survived=0
during_write=0
miss() {
    echo "faults: MISS: $*"
}
ok() {
    survived=$((survived + 1))
}

# a random delay in [0, run_seconds) seconds
random_delay() {
    awk -v max="$run_seconds" -v seed="$1" 'BEGIN { srand(seed); printf "%.3f", rand() * max }'
}

if [ "$ONLY" != sets ]; then
# the run: a small model, the Brown vocabulary (slow checkpoints), 60 batches
zcat data/brown/train/shard-00000.txt.gz | head -3000 > "$work/train.txt"
cat > "$work/options.json" <<'EOF'
{"char_cnn": {"activation": "relu", "embedding": {"dim": 4}, "filters": [[1, 8], [2, 8], [3, 16]],
  "max_characters_per_token": 16, "n_characters": 261, "n_highway": 1},
 "lstm": {"cell_clip": 3, "dim": 64, "n_layers": 2, "proj_clip": 3, "projection_dim": 32, "use_skip_connections": true},
 "batch_size": 16, "unroll_steps": 10, "n_negative_samples_batch": 64, "n_epochs": 1}
EOF
train_args="--options $work/options.json --train-prefix $work/train.txt --vocab data/brown/vocab.txt
    --n-train-tokens 9600 --checkpoint-every 4 --log-every 0 --threads 1 --seed 7"
final=model.ckpt-60.hdf5

start=$(date +%s%N)
# shellcheck disable=SC2086
"$ELMO" train $train_args --save-dir "$work/reference" 2>"$work/reference.err" ||
    { echo "faults: the reference run failed: $(tail -1 "$work/reference.err")"; exit 1; }
run_seconds=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')

# finish DIR: --restart until the run is complete (a kill before the first checkpoint
# leaves nothing to restart: start it again)
finish() {
    dir=$1
    for attempt in 1 2 3 4 5; do
        if ls "$dir"/model.ckpt-*.hdf5 >/dev/null 2>&1; then
            "$ELMO" train --restart "$dir" 2>"$dir.finish.err" && return 0
        else
            # shellcheck disable=SC2086
            "$ELMO" train $train_args --save-dir "$dir" 2>"$dir.finish.err" && return 0
        fi
    done
    return 1
}


# 1. kill -9 at random moments
i=0
while [ $i -lt "$KILLS" ]; do
    i=$((i + 1))
    dir="$work/kill-$i"
    delay=$(random_delay $i)
    # shellcheck disable=SC2086
    "$ELMO" train $train_args --save-dir "$dir" 2>"$dir.err" &
    pid=$!
    sleep "$delay"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    injected=$((injected + 1))
    # a temporary left behind: the kill hit a checkpoint (or another result) being written
    if ls "$dir" 2>/dev/null | grep -q '\.tmp\.'; then during_write=$((during_write + 1)); fi
    if ! finish "$dir"; then
        miss "kill -9 after ${delay}s: the run could not be finished: $(tail -1 "$dir.finish.err")"
    elif ! cmp -s "$work/reference/$final" "$dir/$final"; then
        miss "kill -9 after ${delay}s: the final checkpoint differs from the uninterrupted run's"
    elif ls "$dir" | grep -q '\.tmp\.'; then
        miss "kill -9 after ${delay}s: temporary files left: $(ls "$dir" | grep '\.tmp\.' | tr '\n' ' ')"
    else
        ok
    fi
done

# 2. SIGTERM / SIGINT: a checkpoint of the batch reached, exit 128 + signal, exact resume
i=0
while [ $i -lt "$SIGNALS" ]; do
    i=$((i + 1))
    dir="$work/signal-$i"
    if [ $((i % 2)) -eq 0 ]; then sig=INT; code=130; else sig=TERM; code=143; fi
    delay=$(random_delay $((100 + i)))
    # shellcheck disable=SC2086
    "$ELMO" train $train_args --save-dir "$dir" 2>"$dir.err" &
    pid=$!
    sleep "$delay"
    kill -$sig $pid 2>/dev/null
    wait $pid
    rc=$?
    injected=$((injected + 1))
    if [ $rc -ne $code ] && [ $rc -ne 0 ]; then
        miss "SIG$sig after ${delay}s: exit $rc (expected $code, or 0 when already done)"
    elif [ $rc -eq $code ] && ! grep -q "resume with: elmo train --restart" "$dir.err"; then
        miss "SIG$sig after ${delay}s: no resume command printed"
    elif ! finish "$dir" || ! cmp -s "$work/reference/$final" "$dir/$final"; then
        miss "SIG$sig after ${delay}s: the resumed run does not end byte-identical"
    else
        ok
    fi
done

# 2b. SIGTERM / SIGINT during a fresh run's setup (the first milliseconds): the run stops
# before its first batch leaving no directory behind, or after it with a checkpoint
i=0
while [ $i -lt "$EARLY" ]; do
    i=$((i + 1))
    dir="$work/early-$i"
    if [ $((i % 2)) -eq 0 ]; then sig=INT; else sig=TERM; fi
    delay=$(awk -v i="$i" 'BEGIN { printf "%.3f", 0.006 * i }')
    # shellcheck disable=SC2086
    "$ELMO" train $train_args --save-dir "$dir" 2>"$dir.err" &
    pid=$!
    sleep "$delay"
    kill -$sig $pid 2>/dev/null
    wait $pid
    injected=$((injected + 1))
    if [ -e "$dir" ] && ! ls "$dir"/model.ckpt-*.hdf5 >/dev/null 2>&1; then
        miss "SIG$sig after ${delay}s of setup: the save directory was left without a checkpoint: $(ls "$dir" | tr '\n' ' ')"
    else
        ok
    fi
done

# 3. a second run on a directory in use
dir="$work/busy"
# shellcheck disable=SC2086
"$ELMO" train $train_args --save-dir "$dir" 2>"$dir.err" &
pid=$!
while ! grep -q 'to go at' "$dir.err" 2>/dev/null; do sleep 0.05; done
injected=$((injected + 1))
if "$ELMO" train --restart "$dir" 2>"$dir.second.err"; then
    miss "a second --restart on a directory in use was not refused"
elif ! grep -q "$pid" "$dir.second.err"; then
    miss "the refusal of a second run does not name the running process: $(cat "$dir.second.err")"
else
    ok
fi
wait $pid

# 4. a full disk: one line, exit 2, the earlier result intact, then room again
full_disk() { # name, the file whose earlier content must survive, command...
    name=$1
    keep=$2
    shift 2
    cp "$keep" "$work/$name.before" 2>/dev/null
    injected=$((injected + 1))
    (trap '' XFSZ; ulimit -f 64; exec "$@") >/dev/null 2>"$work/$name.err"
    rc=$?
    lines=$(grep -c '^elmo: ' "$work/$name.err")
    if [ $rc -ne 2 ] || [ "$lines" -ne 1 ]; then
        miss "full disk, $name: exit $rc with $lines error lines (expected 2 and 1): $(tail -2 "$work/$name.err")"
    elif [ -e "$work/$name.before" ] && ! cmp -s "$keep" "$work/$name.before"; then
        miss "full disk, $name: the earlier $keep was damaged"
    else
        ok
    fi
}
dir="$work/kill-1"
full_disk train "$dir/$final" "$ELMO" train --restart "$dir" --n-epochs 2
full_disk dump-weights "$work/export/weights.hdf5" "$ELMO" dump-weights --save-dir "$dir" --output "$work/export/weights.hdf5"
"$ELMO" dump-weights --save-dir "$dir" --output "$work/export/weights.hdf5" 2>/dev/null
echo "the cat sat on the mat" > "$work/sentences.txt"
for n in $(seq 1 2000); do echo "the cat sat on the mat $n"; done >> "$work/sentences.txt"
echo "an earlier result" > "$work/emb.hdf5"
full_disk embed "$work/emb.hdf5" "$ELMO" embed --options "$work/export/options.json" --weights "$work/export/weights.hdf5" \
    --vocab data/brown/vocab.txt --input "$work/sentences.txt" --output "$work/emb.hdf5" --quiet
echo "an earlier vocabulary" > "$work/vocab.txt"
zcat data/brown/train/*.txt.gz > "$work/brown.txt"
full_disk vocab "$work/vocab.txt" "$ELMO" vocab --input "$work/brown.txt" --output "$work/vocab.txt" --quiet
full_disk shard "$work/brown.txt" "$ELMO" shard --input "$work/brown.txt" --output-dir "$work/shards" --shards 2 --quiet
if ls "$work/shards/train" 2>/dev/null | grep -q .; then miss "full disk, shard: a partial shard set was left"; fi
injected=$((injected + 1))
if "$ELMO" train --restart "$dir" --n-epochs 2 2>"$work/resume.err"; then ok; else
    miss "the run did not resume once there was room: $(tail -1 "$work/resume.err")"; fi

fi # sections 1-4

# 5. shard and prepare replace their set in one step
set_points=0
set_unreached=0
set_old=0
set_new=0
# the files a reader sees (through the links), with their checksums
visible_set() { (cd "$1" && for f in train/* heldout/* vocab.txt; do [ -f "$f" ] && md5sum "$f"; done) }
# what no run may leave once it ended normally: hidden names besides the switch and its
# generation, and temporaries
set_leftovers() {
    { ls -A "$1" | grep '^\.' | grep -v -x -e .shards -e "$(readlink "$1/.shards" 2>/dev/null || echo .shards)"
      find "$1" -name '*.tmp.*'; } 2>/dev/null
}
# check_killed NAME DIR COMMAND ARGS...: DIR after a kill holds the earlier or the new set;
# the command run again completes the new set without leftovers
check_killed() {
    name=$1
    dir=$2
    shift 2
    injected=$((injected + 1))
    visible_set "$dir" >"$dir.sum"
    if cmp -s "$dir.sum" "$set_ref.old.sum"; then set_old=$((set_old + 1))
    elif cmp -s "$dir.sum" "$set_ref.new.sum"; then set_new=$((set_new + 1))
    else
        miss "$name: neither the earlier set nor the new one ($(wc -l <"$dir.sum") files:" \
            "$(cut -c35- "$dir.sum" | tr '\n' ' '| cut -c1-120))"
        return
    fi
    if ! "$@" >/dev/null 2>"$dir.next.err"; then
        miss "$name: the next run failed: $(tail -1 "$dir.next.err")"
    elif ! visible_set "$dir" | cmp -s - "$set_ref.new.sum"; then
        miss "$name: the next run did not give the new set"
    elif [ -n "$(set_leftovers "$dir")" ]; then
        miss "$name: the next run left $(set_leftovers "$dir" | tr '\n' ' ')"
    else
        ok
    fi
}
# older_layout FROM TO: TO holds FROM's set as an earlier version wrote it (directories)
older_layout() {
    rm -rf "$2" && mkdir "$2" && cp -rL "$1/train" "$1/heldout" "$2/" && { [ ! -e "$1/vocab.txt" ] || cp -L "$1/vocab.txt" "$2/"; }
}
[ -e "$work/brown.txt" ] || zcat data/brown/train/*.txt.gz > "$work/brown.txt"
cat "$work/brown.txt" "$work/brown.txt" > "$work/sets.txt"
head -4000 "$work/brown.txt" > "$work/sets-small.txt"
for command in shard prepare; do
    # random moments of a run over 22 MB into 8 gzip shards
    set_args="$command --input $work/sets.txt --shards 8 --heldout-fraction 0.05 --gzip --quiet"
    set_ref="$work/set-$command"
    # shellcheck disable=SC2086
    "$ELMO" $set_args --seed 1 --output-dir "$set_ref.old" >/dev/null 2>&1 &&
        "$ELMO" $set_args --seed 2 --output-dir "$set_ref.new" >/dev/null 2>&1 ||
        { echo "faults: the reference $command runs failed"; exit 1; }
    visible_set "$set_ref.old" >"$set_ref.old.sum"
    visible_set "$set_ref.new" >"$set_ref.new.sum"
    start=$(date +%s%N)
    cp -r "$set_ref.old" "$set_ref.timed"
    # shellcheck disable=SC2086
    "$ELMO" $set_args --seed 2 --force --output-dir "$set_ref.timed" >/dev/null 2>&1
    run_seconds=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    i=0
    while [ $i -lt "$SET_KILLS" ]; do
        i=$((i + 1))
        dir="$work/set-$command-kill-$i"
        if [ $((i % 3)) -eq 0 ]; then older_layout "$set_ref.old" "$dir"; else cp -r "$set_ref.old" "$dir"; fi
        delay=$(random_delay $((200 + i)))
        # shellcheck disable=SC2086
        "$ELMO" $set_args --seed 2 --force --output-dir "$dir" >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null
        # shellcheck disable=SC2086
        check_killed "$command, kill -9 after ${delay}s of ${run_seconds}s" "$dir" "$ELMO" $set_args --seed 2 --force --output-dir "$dir"
    done
    # before every change of a name (a small run: 2 shards), for both layouts; on one
    # thread, as strace counts a call's occurrences per thread
    command -v strace >/dev/null 2>&1 || continue
    export OMP_NUM_THREADS=1
    set_args="$command --input $work/sets-small.txt --shards 2 --heldout-fraction 0.1 --quiet"
    # shellcheck disable=SC2086
    rm -rf "$set_ref.old" "$set_ref.new" && "$ELMO" $set_args --seed 1 --output-dir "$set_ref.old" >/dev/null 2>&1 &&
        "$ELMO" $set_args --seed 2 --output-dir "$set_ref.new" >/dev/null 2>&1 ||
        { echo "faults: the reference $command runs failed"; exit 1; }
    visible_set "$set_ref.old" >"$set_ref.old.sum"
    visible_set "$set_ref.new" >"$set_ref.new.sum"
    calls=symlink,symlinkat,rename,renameat,renameat2,link,linkat,unlink,unlinkat,mkdir,mkdirat,rmdir
    for layout in current older; do
        base="$set_ref.$layout"
        if [ $layout = older ]; then older_layout "$set_ref.old" "$base"; else rm -rf "$base"; cp -r "$set_ref.old" "$base"; fi
        rm -rf "$base.trace" && cp -r "$base" "$base.trace"
        # the calls of a whole run, in order: "name occurrence"
        # shellcheck disable=SC2086
        strace -qq -f -e trace=$calls -o "$base.calls" "$ELMO" $set_args --seed 2 --force --output-dir "$base.trace" \
            >/dev/null 2>&1
        sed -n 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' "$base.calls" |
            awk '{ n[$1]++; print $1, n[$1] }' >"$base.points"
        while read -r call at; do
            dir="$base-$call-$at"
            rm -rf "$dir" && cp -r "$base" "$dir"
            set_points=$((set_points + 1))
            # shellcheck disable=SC2086
            strace -qq -f -o /dev/null -e trace="$call" -e inject="$call:error=EIO:signal=SIGKILL:when=$at" \
                "$ELMO" $set_args --seed 2 --force --output-dir "$dir" >/dev/null 2>&1
            [ $? -eq 137 ] || set_unreached=$((set_unreached + 1))
            # shellcheck disable=SC2086
            check_killed "$command ($layout layout), kill -9 before $call #$at" "$dir" "$ELMO" $set_args --seed 2 --force \
                --output-dir "$dir"
            rm -rf "$dir"
        done <"$base.points"
    done
    unset OMP_NUM_THREADS
done
echo "faults: shard sets: $((2 * SET_KILLS)) random kills and $set_points kills before a name change" \
    "($set_unreached of them not reached: the run ended first); $set_old showed the earlier set, $set_new the new one"

echo "faults: $injected injected ($KILLS kill -9, $during_write of them during a write; $SIGNALS SIGTERM/SIGINT;" \
    "$EARLY during setup;" \
    "$([ "$ONLY" = sets ] || echo 'a busy directory; 5 full disks; ')$((2 * SET_KILLS + set_points)) kills of" \
    "shard/prepare)," \
    "$survived survived, $((injected - survived)) missed"
[ "$survived" -eq "$injected" ]
