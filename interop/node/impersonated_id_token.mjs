// Mints an ID token with google-auth-library's Impersonated.fetchIdToken.
// Source: the metadata server (Compute, steered by GCE_METADATA_HOST/IP);
// `endpoint` points IAM Credentials at the emulator.
// Args: AUDIENCE TARGET_EMAIL IAM_BASE_URL
import { Compute, Impersonated } from 'google-auth-library';

const [audience, target, endpoint] = process.argv.slice(2);
const client = new Impersonated({
  sourceClient: new Compute(),
  targetPrincipal: target,
  targetScopes: ['https://www.googleapis.com/auth/cloud-platform'],
  delegates: [],
  endpoint,
});
const token = await client.fetchIdToken(audience, { includeEmail: true });
console.log(JSON.stringify({ token }));
