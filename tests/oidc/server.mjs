// A real OpenID Connect provider for Setpoint's SSO tests: oidc-provider (OpenID-certified), with
// its development login form (any password; the login names the account). Accounts' claims,
// groups among them, are read from ACCOUNTS_FILE at every login, so a test can change a user's
// groups between two logins.
//   ISSUER=http://127.0.0.1:PORT PORT=... CLIENTS_FILE=clients.json ACCOUNTS_FILE=accounts.json node server.mjs
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const { ISSUER, PORT, CLIENTS_FILE, ACCOUNTS_FILE } = process.env;
const accounts = () => JSON.parse(readFileSync(ACCOUNTS_FILE, 'utf8'));

const provider = new Provider(ISSUER, {
  clients: JSON.parse(readFileSync(CLIENTS_FILE, 'utf8')),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  async findAccount(ctx, id) {
    const account = accounts()[id] || {};
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: account.email || `${id}@example.com`,
          email_verified: true,
          given_name: account.given_name || id,
          family_name: account.family_name || 'Tester',
          preferred_username: account.preferred_username || id,
          groups: account.groups || [],
        };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['setpoint-test-oidc-provider-cookie-key'] },
  pkce: { required: () => true },
});
provider.proxy = false;
provider.listen(Number(PORT), '127.0.0.1', () => console.log(`oidc-provider ${ISSUER} listening`));
