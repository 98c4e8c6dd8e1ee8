#!/usr/bin/env bash
# Review summary against the deployed stack (make deploy, before the CLI
# asks for approval): compares the stack's template as CloudFormation holds
# it with the one in a synthesized cloud assembly, using review.mjs, the
# same summary and gate as `make diff BASE=<ref>`. The
# summary is also written to <assembly>/review.md.
#
#   infra/scripts/review-deployed.sh <stack> <cloud assembly dir>
#
# Without AWS credentials it says so in one line and exits 0: the deploy
# that follows reports the missing credentials itself. A stack that does not
# exist yet is compared with an empty template (everything is added).
# Exits 1 when a stateful resource would be replaced, destroyed or
# regenerated and ALLOW_REPLACE (environment) does not name it.
set -euo pipefail

stack=${1:?usage: $0 <stack> <cloud assembly dir>}
asm=${2:?usage: $0 <stack> <cloud assembly dir>}
root=$(cd "$(dirname "$0")/../.." && pwd)
template=$asm/$stack.template.json
[ -f "$template" ] || { echo "review-deployed: $template is missing: synthesize first" >&2; exit 2; }

if ! command -v aws >/dev/null 2>&1 || ! aws sts get-caller-identity >/dev/null 2>&1; then
	echo "review-deployed: no AWS credentials (aws sts get-caller-identity failed): no review summary against the deployed $stack" >&2
	exit 0
fi

# The region the stack is synthesized for (the region context key), from the
# assembly's manifest: the AWS CLI's default region may be another one.
region=$(node -e '
	const m = require(process.argv[1]);
	const env = m.artifacts?.[process.argv[2]]?.environment ?? "";
	process.stdout.write(env.split("/")[3] ?? "");
' "$(cd "$asm" && pwd)/manifest.json" "$stack")
[ -n "$region" ] || { echo "review-deployed: no region for $stack in $asm/manifest.json" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/buddy-review.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

label="deployed $stack ($region)"
# Original: the template as the CDK submitted it, before any transform.
if ! aws cloudformation get-template --region "$region" --stack-name "$stack" --template-stage Original \
	--query TemplateBody --output json >"$tmp/deployed.json" 2>"$tmp/err"; then
	if grep -q 'does not exist' "$tmp/err"; then
		echo '{}' >"$tmp/deployed.json"
		label="nothing ($stack is not deployed in $region yet)"
	else
		cat "$tmp/err" >&2
		echo "review-deployed: cannot read the template of $stack" >&2
		exit 1
	fi
fi
# The AWS CLI returns a JSON template as an object, a YAML one as a string.
node -e '
	const fs = require("fs");
	const t = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
	if (typeof t === "string") {
		try { fs.writeFileSync(process.argv[1], JSON.stringify(JSON.parse(t))); }
		catch { console.error("review-deployed: the deployed template is not JSON; compare it by hand"); process.exit(2); }
	}
' "$tmp/deployed.json"

node "$root/infra/scripts/review.mjs" --title "$stack: $label → this checkout" \
	--out "$asm/review.md" "$tmp/deployed.json" "$template"
