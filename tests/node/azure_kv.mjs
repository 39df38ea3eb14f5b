// azure_kv.mjs - drives the real @azure/keyvault-secrets + @azure/identity
// against the Azure emulator (tests/integration/test_azure_emulator_fidelity.py).
// Environment: AZEMU_VAULT_URL, AZEMU_AUTHORITY, AZEMU_TENANT,
// AZEMU_CLIENT_ID, AZEMU_CLIENT_SECRET; NODE_EXTRA_CA_CERTS names the
// test CA. Prints one JSON object of results on stdout.
import { ClientSecretCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const env = process.env;
const credential = new ClientSecretCredential(
  env.AZEMU_TENANT, env.AZEMU_CLIENT_ID, env.AZEMU_CLIENT_SECRET,
  {
    authorityHost: env.AZEMU_AUTHORITY,
    // else MSAL asks login.microsoftonline.com about the authority
    disableInstanceDiscovery: true,
  });
const client = new SecretClient(env.AZEMU_VAULT_URL, credential, {
  // the challenge names vault.azure.net, which 127.0.0.1 is not under
  disableChallengeResourceVerification: true,
  retryOptions: { maxRetries: 1, retryDelayInMs: 100 },
});

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { status: e.statusCode, code: e.code };
  }
}

const out = {};
const set = await client.setSecret("from-node", "value-from-node", {
  tags: { via: "node" }, contentType: "text/plain",
});
out.set_value = set.value;
const got = await client.getSecret("from-node");
out.get_value = got.value;
out.tags = got.properties.tags;
out.content_type = got.properties.contentType;
out.by_version = (await client.getSecret("from-node",
  { version: set.properties.version })).value;
out.names = [];
for await (const p of client.listPropertiesOfSecrets()) out.names.push(p.name);
out.disabled = await errorOf(client.getSecret("off"));
out.missing = await errorOf(client.getSecret("no-such-secret"));
process.stdout.write(JSON.stringify(out) + "\n");
