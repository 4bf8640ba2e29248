// Verifies a token with google-auth-library's OAuth2Client against the
// emulator's key sets, as a Node service would, and reports the claims or
// the error as one JSON line.
//   node verify_token.mjs google TOKEN AUDIENCE PEM_CERTS_URL
//     -> verifyIdToken (Google's PEM certificates; issuer accounts.google.com)
//   node verify_token.mjs iap TOKEN AUDIENCE IAP_PUBLIC_KEY_URL
//     -> getIapPublicKeys + verifySignedJwtWithCertsAsync, as Google's Node
//        IAP sample does (issuer https://cloud.google.com/iap)
import { OAuth2Client } from 'google-auth-library';

const [kind, token, audience, url] = process.argv.slice(2);
try {
  let ticket;
  if (kind === 'google') {
    const client = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: url } });
    ticket = await client.verifyIdToken({ idToken: token, audience });
  } else if (kind === 'iap') {
    const client = new OAuth2Client({ endpoints: { oauth2IapPublicKeyUrl: url } });
    const { pubkeys } = await client.getIapPublicKeys();
    ticket = await client.verifySignedJwtWithCertsAsync(token, pubkeys, audience, [
      'https://cloud.google.com/iap',
    ]);
  } else {
    throw new Error(`unknown kind ${kind}: google or iap`);
  }
  console.log(JSON.stringify({ claims: ticket.getPayload() }));
} catch (e) {
  // The test asserts on which error, so report any.
  console.log(JSON.stringify({ error: e.name, message: e.message }));
}
