// Drives google-auth-library's AwsClient with an AWS external account file
// whose metadata URLs, token_url and impersonation URL point at the
// emulator: getAccessToken() runs the STS exchange, then generateAccessToken.
// Args: FILE
import { readFileSync } from 'node:fs';
import { AwsClient } from 'google-auth-library';

const [path] = process.argv.slice(2);
const client = new AwsClient(JSON.parse(readFileSync(path, 'utf8')));
const { token } = await client.getAccessToken();
console.log(JSON.stringify({ token }));
