#!/usr/bin/env bash
# Offline review diff (make diff BASE=<git-ref>): synthesizes BASE in a
# temporary worktree and the working tree next to it, then prints what
# changes between the two templates with the pinned CDK CLI
# (`cdk diff --template`, which reads no AWS account).
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
"$cdk" diff --app "$tmp/work.out" --template "$tmp/base.out/$stack.template.json" "$stack"
