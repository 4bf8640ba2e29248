// Gets an access token from the external account file in
// GOOGLE_APPLICATION_CREDENTIALS with google-auth-library's
// ExternalAccountClient (an executable source gives a PluggableAuthClient):
// the executable's subject token, the STS exchange, then impersonation's
// generateAccessToken. (GoogleAuth.getClient would also ask Cloud Resource
// Manager for the project, which the emulator is not.)
// Prints the client's class and the access token.
import { readFileSync } from 'node:fs';
import { ExternalAccountClient } from 'google-auth-library';

const json = JSON.parse(
  readFileSync(process.env.GOOGLE_APPLICATION_CREDENTIALS, 'utf8'),
);
const client = ExternalAccountClient.fromJSON({
  ...json,
  scopes: ['https://www.googleapis.com/auth/cloud-platform'],
});
const { token } = await client.getAccessToken();
console.log(JSON.stringify({ class: client.constructor.name, token }));
