// op_connect.mjs - drives the real @1password/connect SDK against the
// 1Password Connect emulator (tests/integration/test_op_emulator_fidelity.py).
// Environment: OPEMU_URL, OPEMU_TOKEN (every vault), OPEMU_REVOKED (a
// revoked token), OPEMU_NARROW (a token for vault "Dev" only). The emulator
// holds vault "Prod" with item "db" (a section "extra", a file "cert.pem"),
// two items titled "twin", and vault "Dev". Prints one JSON object of
// results on stdout.
import { OnePasswordConnect, ItemBuilder, FullItem } from "@1password/connect";

const env = process.env;
const op = OnePasswordConnect({ serverURL: env.OPEMU_URL,
  token: env.OPEMU_TOKEN, keepAlive: true });

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    // the SDK rejects with the server's {"status","message"} body
    return { status: e.status, message: e.message };
  }
}

function fieldsOf(item) {
  return item.fields.map((f) => ({ id: f.id, label: f.label, value: f.value,
    type: f.type, purpose: f.purpose, section: f.section?.id ?? null }));
}

const out = {};
out.vaults = (await op.listVaults()).map((v) => v.name).sort();
const prod = await op.getVault("Prod");            // by title: a filter
out.prod_id = prod.id;
out.prod_items = prod.items;
out.by_id_name = (await op.getVault(prod.id)).name;

out.items = (await op.listItems(prod.id)).map((i) => i.title).sort();
out.summary_has_fields = (await op.listItems(prod.id))
  .some((i) => i.fields !== undefined);
const db = await op.getItem(prod.id, "db");        // by title: filter + GET
out.db = { id: db.id, title: db.title, version: db.version,
  category: db.category, vault: db.vault.id,
  sections: db.sections.map((s) => ({ id: s.id, label: s.label })),
  fields: fieldsOf(db), created: db.createdAt instanceof Date &&
    !isNaN(db.createdAt) };
out.by_title_list = (await op.listItemsByTitle(prod.id, "db")).map((i) => i.id);
out.twins = (await op.listItemsByTitle(prod.id, "twin")).map((i) => i.id).sort();
out.contains = (await op.listItemsByTitleContains(prod.id, "wi"))
  .map((i) => i.title).sort();

// files: by vault and item title, the content as text and as exact bytes
const files = await op.listFiles("Prod", "db");
out.files = files.map((f) => ({ id: f.id, name: f.name, size: f.size,
  content_path: f.content_path }));
out.file = (await op.getFileById("Prod", db.id, files[0].id)).name;
out.file_text = await op.getFileContent(prod.id, db.id, files[0].id);
const stream = await op.getFileContentStream(prod.id, "db", files[0].id);
const chunks = [];
for await (const c of stream) chunks.push(Buffer.from(c));
out.file_b64 = Buffer.concat(chunks).toString("base64");

// create: a builder item with a section, a generated password
const built = new ItemBuilder()
  .setCategory(FullItem.CategoryEnum.Login)
  .setTitle("from-node")
  .addTag("node")
  .addUrl({ href: "https://example.org", primary: true })
  .addField({ label: "username", value: "node-user",
    purpose: "USERNAME" })
  .addField({ label: "password", type: "CONCEALED", purpose: "PASSWORD",
    generate: true, recipe: { length: 40, characterSets: ["LETTERS",
      "DIGITS"] } })
  .addField({ label: "api-key", value: "node-api-key-1", type: "CONCEALED",
    sectionName: "Node stuff" })
  .build();
const created = await op.createItem(prod.id, built);
out.created = { id: created.id, version: created.version,
  vault: created.vault.id, tags: created.tags, urls: created.urls,
  sections: created.sections, fields: fieldsOf(created) };

// update (full replace) what was read, changing one value
const again = await op.getItemById(prod.id, created.id);
again.fields.find((f) => f.label === "api-key").value = "node-api-key-2";
again.title = "from-node-renamed";
const updated = await op.updateItem(prod.id, again);
out.updated = { version: updated.version, title: updated.title,
  fields: fieldsOf(updated) };

// errors as the SDK reports them
out.missing_item = await errorOf(op.getItemById(prod.id,
  "zzzzzzzzzzzzzzzzzzzzzzzzzz"));
out.missing_title = await errorOf(op.getItem(prod.id, "no-such-item"));
out.ambiguous = await errorOf(op.getItem(prod.id, "twin"));
out.missing_vault = await errorOf(op.getVault("No Such Vault"));
const revoked = OnePasswordConnect({ serverURL: env.OPEMU_URL,
  token: env.OPEMU_REVOKED });
out.revoked = await errorOf(revoked.listVaults());
const narrow = OnePasswordConnect({ serverURL: env.OPEMU_URL,
  token: env.OPEMU_NARROW });
out.narrow_vaults = (await narrow.listVaults()).map((v) => v.name);
out.forbidden = await errorOf(narrow.getItemById(prod.id, db.id));

await op.deleteItem(prod.id, "from-node-renamed");
out.after_delete = await errorOf(op.getItemById(prod.id, created.id));
process.stdout.write(JSON.stringify(out) + "\n");
