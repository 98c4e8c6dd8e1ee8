#!/usr/bin/env bash
# Offline review diff (make diff BASE=<git-ref>): synthesizes BASE in a
# temporary worktree and the working tree next to it, prints what changes
# between the two templates with the pinned CDK CLI (`cdk diff --template`,
# which reads no AWS account), then the review summary (review.mjs), also
# written with the CLI's diff to cdk.out/review.md for a pull-request
# comment. Exits 1 when a stateful resource would be replaced, destroyed or
# regenerated and ALLOW_REPLACE (environment) does not name it.
#
#   infra/scripts/diff-base.sh <git-ref> [-c key=value ...]
#
# The worktree is extracted with `git archive`: nothing is written to the
# repository's .git, and an interrupted run leaves nothing behind but a
# temporary directory, removed on exit. It has its own .cache (handler
# builds) and cloud assembly; the Go build cache is shared, so unchanged
# packages are not recompiled. The same context arguments are passed to
# both synths, so only code and cdk.json changes show up.
set -euo pipefail

base=${1:?usage: $0 <git-ref> [-c key=value ...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
cdk=$root/infra/node_modules/.bin/cdk
[ -x "$cdk" ] || { echo "diff-base: $cdk is missing: run make tools" >&2; exit 1; }

stage=dev
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-c) [[ ${args[i+1]:-} == stage=* ]] && stage=${args[i+1]#stage=} ;;
	esac
done
stack=Buddy-$stage

# A review.md of an earlier run must not pass for this one's (the PR
# workflow posts whatever is there) if this run stops before the review.
review=$root/cdk.out/review.md
rm -f "$review"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/buddy-diff.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"

if [ -d "$base" ]; then
	# A directory (another checkout) instead of a ref: copy its sources.
	tar -C "$base" --exclude=./.git --exclude=./.cache --exclude=./cdk.out --exclude=node_modules -cf - . |
		tar -C "$tmp/base" -xf -
	label=$base
else
	commit=$(git -C "$root" rev-parse --verify --quiet "$base^{commit}") ||
		{ echo "diff-base: $base is not a commit of this repository" >&2; exit 1; }
	git -C "$root" archive --format=tar "$commit" | tar -C "$tmp/base" -xf -
	label="$base ($(git -C "$root" rev-parse --short "$commit"))"
fi
[ -f "$tmp/base/cdk.json" ] ||
	{ echo "diff-base: $label has no cdk.json: it predates the CDK app, nothing to compare" >&2; exit 1; }

echo "Synthesizing $stack of $label ..." >&2
(cd "$tmp/base" && "$cdk" synth --quiet "$@" -o "$tmp/base.out" >&2) ||
	{ echo "diff-base: synth of $label failed" >&2; exit 1; }
echo >&2
echo "Synthesizing $stack of the working tree ..." >&2
(cd "$root" && "$cdk" synth --quiet "$@" -o "$tmp/work.out" >&2) ||
	{ echo "diff-base: synth of the working tree failed" >&2; exit 1; }

[ -f "$tmp/base.out/$stack.template.json" ] ||
	{ echo "diff-base: $label synthesized no $stack: compare the whole template by hand" >&2; exit 1; }
echo "Changes from $label to the working tree:" >&2
cd "$root"
# Captured once and printed, so the same text goes into review.md: no
# colours, and no look-up of CDK notices (the network may be out of reach).
"$cdk" diff --no-color --no-notices --app "$tmp/work.out" --template "$tmp/base.out/$stack.template.json" "$stack" \
	>"$tmp/cli-diff.txt" 2>&1 || { cat "$tmp/cli-diff.txt" >&2; echo "diff-base: cdk diff failed" >&2; exit 1; }
cat "$tmp/cli-diff.txt"
echo

# Last, so its exit status (the gate) is the script's.
node "$root/infra/scripts/review.mjs" --title "$stack: $label → working tree" \
	--cli-diff "$tmp/cli-diff.txt" --out "$review" \
	"$tmp/base.out/$stack.template.json" "$tmp/work.out/$stack.template.json"
