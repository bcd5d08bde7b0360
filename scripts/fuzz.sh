#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails if any of them
# finds a crash (a panic, an assertion of a target's property, an ASAN report, a
# timeout or an out-of-memory).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
#   GRIDX_FUZZ_TOOLCHAIN=nightly|stable  force a toolchain (default: nightly when
#                                        rustup has one, else stable, meaning the
#                                        default toolchain with RUSTC_BOOTSTRAP=1)
#
# Each target starts from fuzz/seeds/<target> (committed) copied into the scratch
# corpus fuzz/corpus/<target> (gitignored, kept between runs so later runs start
# from what earlier ones found). Crash inputs land in fuzz/artifacts/<target>/ and
# the libFuzzer log of each run in fuzz/artifacts/<target>.log.
set -euo pipefail

secs=${1:-60}
# -max_total_time takes whole seconds and 0 means no limit at all; libFuzzer reads
# the value with atoi, so anything but a positive whole number is refused here.
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number, got '$secs')" >&2
    exit 2
fi

# cargo fuzz looks for the fuzz/ project from the current directory.
cd "$(dirname "$0")/.."

# cargo-fuzz is a cargo subcommand that CI images rarely have; --locked builds it
# with the dependency versions its authors tested.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

# libFuzzer instrumentation needs -Z flags (-Zsanitizer, sancov passes), i.e. a
# nightly compiler. Without one, RUSTC_BOOTSTRAP=1 lets the stable compiler accept
# them; that is enough for this crate and keeps a stable-only CI machine working.
toolchain=${GRIDX_FUZZ_TOOLCHAIN:-}
if [[ -z $toolchain ]]; then
    # Read the list first: `rustup ... | grep -q` can fail under pipefail when grep
    # exits early and rustup gets SIGPIPE. No rustup at all means no nightly.
    toolchains=$(rustup toolchain list 2>/dev/null || true)
    if grep -q '^nightly' <<<"$toolchains"; then
        toolchain=nightly
    else
        toolchain=stable
    fi
fi
# The fallback uses the default toolchain with no `+stable`, so it also works where
# Rust was installed without rustup.
case $toolchain in
    nightly) fuzz=(cargo +nightly fuzz) rustc=(rustc +nightly) ;;
    stable) fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz) rustc=(rustc) ;;
    *)
        echo "GRIDX_FUZZ_TOOLCHAIN must be nightly or stable, got '$toolchain'" >&2
        exit 2
        ;;
esac
echo "fuzzing with $("${rustc[@]}" --version) ($toolchain), $(cargo fuzz --version), ${secs}s per target"

# Build every target once up front (release with debug assertions and ASAN, the
# cargo fuzz defaults), so a compile error fails here and compile time is not taken
# out of the fuzzing time.
"${fuzz[@]}" build

mapfile -t targets < <("${fuzz[@]}" list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets found in fuzz/" >&2
    exit 1
fi

failed=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    log=fuzz/artifacts/$target.log
    mkdir -p "$corpus" "$artifacts"
    # Seeds go into the scratch corpus (libFuzzer writes new finds to the first
    # corpus directory, and fuzz/seeds must stay as committed). A file an earlier
    # run already copied is left alone.
    for seed in fuzz/seeds/"$target"/*; do
        if [[ -f $seed && ! -e $corpus/${seed##*/} ]]; then
            cp "$seed" "$corpus"/
        fi
    done

    # -print_final_stats=1: the execution count for the summary.
    # -timeout=30: one input running 30 s is a hang worth a report, even on a
    #   loaded 2-core CI machine (libFuzzer's default is 20 minutes).
    # -dict: JSON tokens and the API's field names, so mutations reach past the
    #   parser into the message types sooner.
    # Writing to a log, not the terminal: libFuzzer prints a line per new input.
    # The exit status is read with `if` so that set -e does not stop the loop on the
    # first crash: every target runs, then the script fails.
    if "${fuzz[@]}" run "$target" "$corpus" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
        -dict="$PWD/fuzz/gridx.dict" >"$log" 2>&1; then
        status=0
    else
        status=$?
    fi

    # libFuzzer's own count; `Done N runs` is printed too, take whichever is there.
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [[ -z $execs ]]; then
        execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    fi
    execs=${execs:-0}
    corpus_size=$(find "$corpus" -type f | wc -l)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)

    if [[ $status -eq 0 ]]; then
        echo "$target: ${secs}s, $execs execs ($((execs / secs))/s), corpus $corpus_size files, no crash"
    else
        failed+=("$target")
        echo "$target: ${secs}s, $execs execs, corpus $corpus_size files, CRASH (exit $status)"
        echo "  artifact: ${artifact:-none written; see $log}"
        echo "  reproduce: ${fuzz[*]} run $target ${artifact:-<artifact>}"
        echo "  minimise:  ${fuzz[*]} tmin $target ${artifact:-<artifact>}"
        echo "  log: $log"
        # The panic message (a target's failed property) says more than the stack;
        # without one (ASAN report, timeout, OOM) show the end of the log.
        if grep -q 'panicked at' "$log"; then
            grep -A 6 -m 1 'panicked at' "$log" | sed 's/^/    /'
        else
            tail -n 30 "$log" | sed 's/^/    /'
        fi
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
