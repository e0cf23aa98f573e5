// Wacht's server SDK, with its defaults, against a running session-ledger.
// Usage: node exchange.mjs <publishable key> <session token> [dev]
// Prints {"authToken", "expires", "nextDevSession", "payload"} as JSON; payload is what
// verifyAuthToken returns (null when the SDK refuses the token).
import { exchangeSessionForAuthToken, verifyAuthToken } from "@wacht/backend";

const [publishableKey, sessionToken, dev] = process.argv.slice(2);
const options = { publishableKey };
const exchanged = await exchangeSessionForAuthToken(sessionToken, options, dev === "dev");
const payload = exchanged.authToken
  ? await verifyAuthToken(exchanged.authToken, options)
  : null;
process.stdout.write(
  JSON.stringify({
    authToken: exchanged.authToken,
    expires: exchanged.authTokenExpiresAt,
    nextDevSession: exchanged.nextDevSession,
    payload,
  }),
);
