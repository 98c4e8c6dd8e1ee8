// The Node.js peer handler: the module-level set-up of the Node.js service
// Buddy replaces (an Anthropic client, a Secrets Manager client for its key,
// a DynamoDB client), written the way a Node.js Lambda usually is, so that
// the cold start compares like with like. Only readiness is timed; the
// handler answers without calling anything so no request leaves the machine.
import Anthropic from '@anthropic-ai/sdk';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

const secrets = new SecretsManagerClient({});
const dynamo = new DynamoDBClient({});
// The real key comes from Secrets Manager on first use, as in the Go code;
// the SDK refuses to build a client without one, hence the placeholder.
const anthropic = new Anthropic({ apiKey: 'set-from-secrets-manager', maxRetries: 2 });

export const handler = async () => ({
  statusCode: 200,
  body: JSON.stringify({
    runtime: `node ${process.versions.node}`,
    clients: [secrets.constructor.name, dynamo.constructor.name, anthropic.constructor.name],
  }),
});
