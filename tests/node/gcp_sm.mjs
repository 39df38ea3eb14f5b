// gcp_sm.mjs - drives the real @google-cloud/secret-manager (REST
// transport) + google-auth-library against the GCP emulator
// (tests/integration/test_gcp_emulator_fidelity.py).
//
//   node gcp_sm.mjs SCENARIO
//
// Environment: GCPEMU_URL (https://127.0.0.1:PORT), GCPEMU_PROJECT,
// NODE_EXTRA_CA_CERTS (the test CA), and what the scenario's credentials
// need: GOOGLE_APPLICATION_CREDENTIALS, GCE_METADATA_HOST, ... Prints one
// JSON object of results on stdout.
//
// Where google-auth-library has Google's hosts built in (the OAuth token
// endpoint that gtoken signs JWTs for and posts them to, the IAM
// credentials host), a gaxios transporter given as clientOptions rewrites
// https://oauth2.googleapis.com and https://iamcredentials.googleapis.com
// to the emulator and records what it rewrote. authorized_user clients
// are pointed at the emulator with clientOptions.endpoints.oauth2TokenUrl.
import { SecretManagerServiceClient } from "@google-cloud/secret-manager";
import { GoogleAuth, Impersonated, UserRefreshClient } from "google-auth-library";
import { readFileSync } from "node:fs";
import { Gaxios } from "gaxios";

const env = process.env;
const base = new URL(env.GCPEMU_URL);
const project = env.GCPEMU_PROJECT;
const scenario = process.argv[2];
const out = { scenario, rewritten: [] };

const transporter = new Gaxios();
transporter.interceptors.request.add({
  resolved: async (opts) => {
    const u = new URL(opts.url.toString());
    if (["oauth2.googleapis.com", "iamcredentials.googleapis.com",
      "sts.googleapis.com"].includes(u.hostname)) {
      out.rewritten.push(u.hostname + u.pathname);
      u.protocol = base.protocol;
      u.host = base.host;
      opts.url = u;
    }
    return opts;
  },
});
const clientOptions = {
  transporter,
  endpoints: { oauth2TokenUrl: `${base.origin}/token` },
};

function smClient(extra = {}) {
  return new SecretManagerServiceClient({
    fallback: true,                  // HTTP/1.1 REST, not gRPC
    apiEndpoint: base.hostname,
    port: Number(base.port),
    // else an external_account client asks Cloud Resource Manager
    projectId: project,
    clientOptions,
    ...extra,
  });
}

// The REST transport of this gax/auth pair rejects with the GaxiosError
// of the HTTP call (code = the HTTP status, the body as the cause's
// message) rather than a GoogleError with a gRPC code; both shapes are
// reduced to {code, http, status, message}, status being Google's
// error.status string.
async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    let body = null;
    try {
      body = JSON.parse(e.cause?.message ?? "");
    } catch { /* not a Google envelope */ }
    const g = body?.error;
    return { code: e.code, http: g?.code ?? e.status ?? null,
             status: g?.status ?? null, message: g?.message ?? e.message };
  }
}

const text = (v) => Buffer.from(v.payload.data).toString("utf8");

async function accessText(client, name) {
  const [v] = await client.accessSecretVersion({ name });
  return { name: v.name, data: text(v),
           crc: v.payload.dataCrc32c == null ? null :
             String(v.payload.dataCrc32c) };
}

// ------------------------------------------------------------ scenarios

async function full(client) {
  // create, addVersion (with and without a CRC), access, aliases, list,
  // disable, errors: what an application does with the client
  const parent = `projects/${project}`;
  const [secret] = await client.createSecret({
    parent, secretId: "from-node",
    secret: { replication: { automatic: {} }, labels: { via: "node" } },
  });
  out.created = secret.name;
  out.exists = await errorOf(client.createSecret({
    parent, secretId: "from-node",
    secret: { replication: { automatic: {} } },
  }));
  const [v1] = await client.addSecretVersion({
    parent: secret.name, payload: { data: Buffer.from("value-one") },
  });
  out.v1 = { name: v1.name, state: v1.state,
             checksummed: v1.clientSpecifiedPayloadChecksum };
  const [v2] = await client.addSecretVersion({
    parent: secret.name,
    payload: { data: Buffer.from("value-two"),
               dataCrc32c: Number(env.GCPEMU_CRC_TWO) },
  });
  out.v2 = { name: v2.name, state: v2.state,
             checksummed: v2.clientSpecifiedPayloadChecksum };
  out.bad_crc = await errorOf(client.addSecretVersion({
    parent: secret.name,
    payload: { data: Buffer.from("value-three"), dataCrc32c: 12345 },
  }));
  await client.updateSecret({
    secret: { name: secret.name, versionAliases: { prod: 1 } },
    updateMask: { paths: ["version_aliases"] },
  });
  out.latest = await accessText(client, `${secret.name}/versions/latest`);
  out.by_number = await accessText(client, `${secret.name}/versions/1`);
  out.by_alias = await accessText(client,
    `projects/${project}/secrets/from-node/versions/prod`);
  const [got] = await client.getSecret({ name: secret.name });
  out.aliases = Object.fromEntries(Object.entries(got.versionAliases)
    .map(([k, v]) => [k, String(v)]));
  out.labels = got.labels;
  out.names = [];
  for await (const s of client.listSecretsAsync({ parent, pageSize: 2 })) {
    out.names.push(s.name);
  }
  const [versions] = await client.listSecretVersions({
    parent: secret.name });
  out.versions = versions.map((v) => [v.name.split("/").pop(), v.state]);
  await client.disableSecretVersion({ name: `${secret.name}/versions/2` });
  out.disabled = await errorOf(client.accessSecretVersion({
    name: `${secret.name}/versions/latest` }));
  out.missing = await errorOf(client.accessSecretVersion({
    name: `${parent}/secrets/no-such-secret/versions/latest` }));
  out.regional = await accessText(client,
    `${parent}/locations/us-central1/secrets/reg/versions/latest`);
}

async function readOnly(client) {
  const name = `projects/${project}/secrets/${env.GCPEMU_SECRET}`;
  out.read = await accessText(client, `${name}/versions/latest`);
  out.denied = await errorOf(client.addSecretVersion({
    parent: name, payload: { data: Buffer.from("nope") } }));
}

const scenarios = {
  // GOOGLE_APPLICATION_CREDENTIALS = a service_account key file: the
  // client signs its own JWTs (no token endpoint)
  async adc_full() {
    await full(smClient());
  },
  // any ADC type: read one secret, try to write it
  async adc_read() {
    const client = smClient();
    await readOnly(client);
    // without a project, an external_account client asks Cloud Resource
    // Manager (not emulated); the metadata server answers it itself
    const auth = new GoogleAuth({ clientOptions,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      ...(env.GCPEMU_WANT_PROJECT ? {} : { projectId: project }) });
    if (env.GCPEMU_WANT_PROJECT) out.project = await auth.getProjectId();
    out.client_type = (await auth.getClient()).constructor.name;
  },
  // impersonated_service_account with authorized_user source credentials:
  // GoogleAuth builds the source client without clientOptions (so with
  // Google's hosts), hence the same two clients built from the file here,
  // each pointed at the emulator
  async impersonated() {
    const adc = JSON.parse(readFileSync(env.GOOGLE_APPLICATION_CREDENTIALS));
    const src = adc.source_credentials;
    const sourceClient = new UserRefreshClient({
      clientId: src.client_id, clientSecret: src.client_secret,
      refreshToken: src.refresh_token, endpoints: clientOptions.endpoints,
    });
    const targetPrincipal = /([^/]+):generateAccessToken$/.exec(
      adc.service_account_impersonation_url)[1];
    const client = new Impersonated({
      sourceClient, targetPrincipal, delegates: adc.delegates,
      targetScopes: ["https://www.googleapis.com/auth/cloud-platform"],
      endpoint: new URL(adc.service_account_impersonation_url).origin,
    });
    out.client_type = client.constructor.name;
    await readOnly(smClient({ authClient: client }));
  },
  // a service account's token from the OAuth endpoint (gtoken), given to
  // the Secret Manager client as its auth client
  async jwt_token_endpoint() {
    const auth = new GoogleAuth({
      keyFilename: env.GOOGLE_APPLICATION_CREDENTIALS, clientOptions,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    const jwt = await auth.getClient();
    out.client_type = jwt.constructor.name;
    const tok = await jwt.getAccessToken();
    out.token = tok.token;
    await readOnly(smClient({ authClient: jwt }));
    out.token_again = (await jwt.getAccessToken()).token;
  },
};

if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
await scenarios[scenario]();
process.stdout.write(JSON.stringify(out) + "\n");
