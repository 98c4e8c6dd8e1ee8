#!/usr/bin/env node
// Review summary of a template change and the gate that keeps a
// pull request from silently losing data.
//
//   node infra/scripts/review.mjs [--title T] [--cli-diff FILE] [--out FILE] BASE.json HEAD.json
//
// BASE.json is the template now (the base ref's synth, or the deployed
// stack), HEAD.json the one that would replace it. What happens to each
// resource comes from @aws-cdk/cloudformation-diff, the diff engine of the
// CDK CLI, which knows from the CloudFormation specification which property
// changes replace a resource; this script only decides which of those
// impacts a reviewer must see first and which ones fail.
//
// Prints the summary to stdout and, with --out, writes it as Markdown for a
// pull-request comment, followed by the CLI's text diff (--cli-diff).
// ALLOW_REPLACE (environment) is a comma-separated list of logical ids whose
// replacement, deletion or regeneration is intended.
//
// Exit status: 0 passed, 1 a stateful resource would be replaced, destroyed
// or regenerated and ALLOW_REPLACE does not name it, 2 usage or input error.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);

function fail(msg) {
  console.error(`review: ${msg}`);
  process.exit(2);
}

let fullDiff, renderIntrinsics;
try {
  ({ fullDiff } = require('@aws-cdk/cloudformation-diff'));
  // Not re-exported by the package's index; the pin in package.json keeps
  // this path stable. It renders {"Ref": "X"} as ${X}, as the CLI does.
  ({ renderIntrinsics } = require('@aws-cdk/cloudformation-diff/lib/render-intrinsics'));
} catch (err) {
  fail(`@aws-cdk/cloudformation-diff is not installed in infra/node_modules (${err.code ?? err.message}): run make tools`);
}

// Resource types whose replacement or deletion loses something a deploy
// cannot bring back, and what that is.
const STATEFUL = new Map([
  ['AWS::DynamoDB::Table', { kind: 'DynamoDB table', loses: 'its items would be lost' }],
  ['AWS::Cognito::UserPool', { kind: 'Cognito user pool', loses: 'its users would be lost' }],
  // Its id is the JWT audience: web pages configured with it and tokens
  // issued for it stop working.
  ['AWS::Cognito::UserPoolClient', { kind: 'Cognito user pool client', loses: 'its client id would change' }],
  ['AWS::SecretsManager::Secret', { kind: 'secret', loses: 'the API key stored in it would be lost' }],
  ['AWS::Logs::LogGroup', { kind: 'log group', loses: 'its logs would be lost' }],
  // The uploads bucket (attachments) and its access-log bucket. A
  // replacement is a new, empty bucket under a new name: the functions no
  // longer see the old one's objects, which stay behind (prod retains it)
  // or go once it is emptied (dev; CloudFormation deletes only an empty
  // bucket).
  ['AWS::S3::Bucket', { kind: 'S3 bucket', loses: 'its objects would be lost' }],
]);

// Properties whose in-place update loses the stored value all the same:
// CloudFormation updates a secret whose GenerateSecretString changed by
// generating a new value, over the one the operator put there.
const REGENERATING = new Map([
  ['AWS::SecretsManager::Secret', {
    property: 'GenerateSecretString',
    loses: "would regenerate the secret's value: the operator's API key would be lost",
  }],
]);

// The property that names a resource of each type, shown next to its
// logical id so a reviewer recognizes it.
const NAME_PROPERTY = {
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::Cognito::UserPool': 'UserPoolName',
  'AWS::Cognito::UserPoolClient': 'ClientName',
  'AWS::SecretsManager::Secret': 'Name',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::CloudWatch::Alarm': 'AlarmName',
  'AWS::ApiGatewayV2::Api': 'Name',
  'AWS::S3::Bucket': 'BucketName',
};

// What "added or removed" lists, in this order.
const INVENTORY = [
  ['AWS::Lambda::Function', 'function'],
  ['AWS::ApiGatewayV2::Route', 'route'],
  ['AWS::DynamoDB::Table', 'table'],
  ['AWS::S3::Bucket', 'bucket'],
  ['AWS::CloudWatch::Alarm', 'alarm'],
];

const IMPACT_WORDS = {
  WILL_REPLACE: 'will replace',
  MAY_REPLACE: 'may replace',
  WILL_DESTROY: 'will destroy',
  WILL_ORPHAN: 'will orphan',
};

// The CLI's text diff is embedded in the comment; GitHub refuses comments
// over 65,536 characters, so a longer one is cut (make diff prints it whole).
const MAX_CLI_DIFF = 50000;

const { values: opts, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        title: { type: 'string', default: 'Template review' },
        'cli-diff': { type: 'string' },
        out: { type: 'string' },
      },
    });
  } catch (err) {
    return fail(err.message);
  }
})();
if (positionals.length !== 2) {
  fail('usage: review.mjs [--title T] [--cli-diff FILE] [--out FILE] BASE.json HEAD.json');
}

function readTemplate(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return fail(`cannot read ${file}: ${err.message}`);
  }
  try {
    const t = JSON.parse(text);
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new Error('not an object');
    t.Resources ??= {};
    return t;
  } catch (err) {
    return fail(`${file} is not a JSON template: ${err.message}`);
  }
}

const base = readTemplate(positionals[0]);
const head = readTemplate(positionals[1]);
const allowed = new Set((process.env.ALLOW_REPLACE ?? '').split(',').map((s) => s.trim()).filter(Boolean));

const diff = fullDiff(base, head);

// render turns a template value into one line of text.
function render(v) {
  if (v === undefined) return '(unset)';
  const r = renderIntrinsics(v);
  return typeof r === 'string' ? r : JSON.stringify(r);
}

const code = (s) => '`' + String(s).replaceAll('`', "'") + '`';

// label is how a resource is named in the summary: its logical id, and its
// name property when it has one.
function label(id, res) {
  const prop = NAME_PROPERTY[res?.Type];
  const name = prop && res.Properties?.[prop];
  return name === undefined ? code(id) : `${code(id)} ${code(render(name))}`;
}

// ---- Stateful resources: the gate ----
const stateful = [];
const failed = [];
const mayReplace = [];
diff.resources.forEachDifference((id, change) => {
  const type = change.oldResourceType ?? change.newResourceType;
  const impact = change.changeImpact;
  const regenerates = REGENERATING.get(type);
  if (impact === 'WILL_UPDATE' && regenerates && change.propertyUpdates[regenerates.property]) {
    let line = `**will update** ${label(id, base.Resources[id])} (${STATEFUL.get(type).kind}): ${code(regenerates.property)} changed`;
    if (allowed.has(id)) {
      line += '; allowed by ALLOW_REPLACE';
    } else {
      line += `; **not allowed**: ${regenerates.loses}`;
      failed.push(id);
    }
    stateful.push(`- ${line}`);
    return;
  }
  if (!STATEFUL.has(type) || !IMPACT_WORDS[impact]) return;
  const res = base.Resources[id] ?? head.Resources[id];
  const { kind, loses } = STATEFUL.get(type);
  let line = `**${IMPACT_WORDS[impact]}** ${label(id, res)} (${kind})`;
  // Name the properties that force the replacement, as the CLI's diff does.
  const causes = Object.entries(change.propertyUpdates)
    .filter(([, p]) => p.changeImpact === 'WILL_REPLACE' || p.changeImpact === 'MAY_REPLACE')
    .map(([name]) => code(name));
  if (change.resourceTypeChanged) causes.push('its type');
  if (causes.length) line += `: ${causes.join(', ')} changed`;
  switch (impact) {
    case 'WILL_REPLACE':
    case 'WILL_DESTROY':
      if (allowed.has(id)) {
        line += '; allowed by ALLOW_REPLACE';
      } else {
        line += `; **not allowed**: ${loses}`;
        failed.push(id);
      }
      break;
    case 'MAY_REPLACE':
      mayReplace.push(id);
      line += '; **check before merging**: CloudFormation decides at deploy time whether it is replaced';
      break;
    case 'WILL_ORPHAN':
      line += '; retained: it stays in the account, no longer managed by this stack';
      break;
  }
  stateful.push(`- ${line}`);
});
for (const id of [...allowed].sort()) {
  if (!stateful.some((l) => l.includes(code(id)))) {
    stateful.push(`- ALLOW_REPLACE names ${code(id)}, which this change neither replaces, destroys nor regenerates`);
  }
}

// ---- IAM statements (the CLI's own IAM analysis) ----
function statementLine(sign, s) {
  const r = s.render();
  const one = (x) => x.split('\n').filter(Boolean).map(code).join(', ');
  let line = `- ${sign} ${r.effect} ${one(r.action)} on ${one(r.resource)}`;
  if (r.principal) line += ` for ${one(r.principal)}`;
  if (r.condition) line += ` when ${code(r.condition.replace(/\s+/g, " "))}`;
  return line;
}
const iam = diff.iamChanges;
const iamLines = [
  ...iam.statements.additions.map((s) => statementLine('added:', s)),
  ...iam.statements.removals.map((s) => statementLine('removed:', s)),
  ...iam.managedPolicies.additions.map((m) => `- added: managed policy ${code(m.managedPolicyArn)} on ${code(m.identityArn)}`),
  ...iam.managedPolicies.removals.map((m) => `- removed: managed policy ${code(m.managedPolicyArn)} on ${code(m.identityArn)}`),
];

// ---- Function environments ----
const envLines = [];
const functionName = (id, res) => render(res.Properties?.FunctionName ?? id);
const functions = Object.keys(head.Resources)
  .filter((id) => head.Resources[id].Type === 'AWS::Lambda::Function' && base.Resources[id]?.Type === 'AWS::Lambda::Function')
  .sort((a, b) => functionName(a, head.Resources[a]).localeCompare(functionName(b, head.Resources[b])));
for (const id of functions) {
  const oldEnv = base.Resources[id].Properties?.Environment?.Variables ?? {};
  const newEnv = head.Resources[id].Properties?.Environment?.Variables ?? {};
  for (const key of [...new Set([...Object.keys(oldEnv), ...Object.keys(newEnv)])].sort()) {
    const before = render(oldEnv[key]);
    const after = render(newEnv[key]);
    if (before !== after) {
      envLines.push(`- ${code(functionName(id, head.Resources[id]))} ${code(key)}: ${code(before)} → ${code(after)}`);
    }
  }
}

// ---- Functions, routes, tables, buckets, alarms added or removed ----
function routeLabel(res, template) {
  const p = res.Properties ?? {};
  const api = p.ApiId?.Ref && template.Resources[p.ApiId.Ref];
  const apiName = api?.Properties?.Name;
  return apiName === undefined ? code(render(p.RouteKey)) : `${code(render(p.RouteKey))} on ${code(render(apiName))}`;
}
const inventoryLines = [];
for (const [type, noun] of INVENTORY) {
  diff.resources.forEachDifference((id, change) => {
    if (change.isAddition && change.newResourceType === type) {
      const res = head.Resources[id];
      inventoryLines.push(`- added ${noun} ${type === 'AWS::ApiGatewayV2::Route' ? routeLabel(res, head) : label(id, res)}`);
    } else if (change.isRemoval && change.oldResourceType === type) {
      const res = base.Resources[id];
      inventoryLines.push(`- removed ${noun} ${type === 'AWS::ApiGatewayV2::Route' ? routeLabel(res, base) : label(id, res)}`);
    }
  });
}

// ---- Output ----
const section = (title, lines) => [`### ${title}`, '', ...(lines.length ? lines : ['None.']), ''];
const summary = [`## ${opts.title}`, ''];
if (diff.isEmpty) {
  summary.push('No differences.', '');
} else {
  if (failed.length) {
    summary.push(
      `**Gate: failed.** A stateful resource would be replaced, destroyed or regenerated: ${failed.map(code).join(', ')}. ` +
        `If that is intended, run again with ${code('ALLOW_REPLACE=' + [...allowed, ...failed].join(','))}.`,
      '',
    );
  } else {
    summary.push('**Gate: passed.** No stateful resource would be replaced, destroyed or regenerated without ALLOW_REPLACE.', '');
  }
  summary.push(
    ...section('Stateful resources', stateful),
    ...section('IAM statements', iamLines),
    ...section('Function environment', envLines),
    ...section('Functions, routes, tables, buckets, alarms added or removed', inventoryLines),
  );
}

const markdown = [...summary];
if (opts['cli-diff']) {
  let text;
  try {
    text = fs.readFileSync(opts['cli-diff'], 'utf8').trimEnd();
  } catch (err) {
    fail(`cannot read ${opts['cli-diff']}: ${err.message}`);
  }
  if (text.length > MAX_CLI_DIFF) {
    text = text.slice(0, MAX_CLI_DIFF) + `\n... (${text.length - MAX_CLI_DIFF} more characters: run make diff locally for the rest)`;
  }
  // A fence longer than any backtick run in the text cannot be closed by it.
  const fence = '`'.repeat(Math.max(3, ...[...text.matchAll(/`+/g)].map((m) => m[0].length + 1)));
  markdown.push('### Full diff (cdk diff)', '', '<details><summary>cdk diff output</summary>', '', fence + 'text', text, fence, '', '</details>', '');
}

if (opts.out) {
  try {
    fs.mkdirSync(path.dirname(opts.out), { recursive: true });
    fs.writeFileSync(opts.out, markdown.join('\n'));
  } catch (err) {
    fail(`cannot write ${opts.out}: ${err.message}`);
  }
}
process.stdout.write(summary.join('\n'));
if (opts.out) console.error(`review: wrote ${opts.out}`);
if (mayReplace.length) {
  console.error(`review: warning: CloudFormation may replace ${mayReplace.join(', ')} at deploy time: check the change before merging`);
}
if (failed.length) {
  console.error(
    `review: refusing: stateful resource${failed.length > 1 ? 's' : ''} ${failed.join(', ')} would be replaced, destroyed or regenerated; ` +
      `set ALLOW_REPLACE=${[...allowed, ...failed].join(',')} if that is intended`,
  );
  process.exit(1);
}
