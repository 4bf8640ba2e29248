// Gets request headers from google-auth-library's IdTokenClient (ADC), twice, and reports them.
import { GoogleAuth } from 'google-auth-library';
import { getGCPResidency } from 'gcp-metadata';

const [audience, url] = process.argv.slice(2);
const client = await new GoogleAuth().getIdTokenClient(audience);
const first = await client.getRequestHeaders(url);
const second = await client.getRequestHeaders(url);
console.log(
  JSON.stringify({
    authorization: first.get('authorization'),
    second_authorization: second.get('authorization'),
    // On Google hardware the library skips the metadata ping.
    gcp_residency: getGCPResidency(),
  }),
);
