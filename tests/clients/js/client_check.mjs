// Drives the official Replicate JS client (pinned in package.json) against a live marketplace.
// Config comes as JSON in MK_CONFIG; the result is one JSON object on stdout that the Python test
// asserts on. Every step records what the client returned, not what we expect it to be.
import { webcrypto } from "node:crypto";
import http from "node:http";
import Replicate, { validateWebhook } from "replicate";

const cfg = JSON.parse(process.env.MK_CONFIG);
const replicate = new Replicate({ auth: cfg.token, baseUrl: `${cfg.baseUrl}/v1` });
const out = {};
const o = cfg.owner;

async function main() {
  out.hello = await replicate.run(`${o}/hello`, { input: { text: "js" } });
  out.helloPinned = await replicate.run(`${o}/hello:${cfg.versions.hello}`, {
    input: { text: "pinned" },
  });

  // A Buffer input is uploaded with files.create and replaced by the file's URL.
  const png = Buffer.from(cfg.pngBase64, "base64");
  const filtered = await replicate.run(`${o}/image-filter`, {
    input: { image: png, filter: "invert", size: 32 },
  });
  out.imageOutput = String(filtered);
  const fetched = await fetch(String(filtered));
  out.imageOutputStatus = fetched.status;
  out.imageOutputBytes = (await fetched.arrayBuffer()).byteLength;

  let prediction = await replicate.predictions.create({
    version: cfg.versions.hello,
    input: { text: "waited" },
  });
  prediction = await replicate.wait(prediction, { interval: 100 });
  out.created = { status: prediction.status, output: prediction.output };

  const listed = [];
  for await (const page of replicate.paginate(replicate.predictions.list)) {
    listed.push(...page.map((p) => p.id));
  }
  out.listed = listed.length;
  out.listedUnique = new Set(listed).size;

  const chunks = [];
  for await (const event of replicate.stream(`${o}/text-stream`, {
    input: { prompt: "the", max_tokens: 8, seed: 1 },
  })) {
    chunks.push({ event: event.event, id: event.id, data: event.data });
  }
  out.stream = chunks;

  const model = await replicate.models.get(o, "hello");
  out.model = { owner: model.owner, name: model.name, latest: model.latest_version?.id };
  out.versions = (await replicate.models.versions.list(o, "hello")).results.map((v) => v.id);
  out.version = (await replicate.models.versions.get(o, "hello", cfg.versions.hello)).id;
  out.hardware = await replicate.hardware.list();
  out.account = await replicate.accounts.current();
  out.collections = (await replicate.collections.list()).results.map((c) => c.slug);
  out.collection = await replicate.collections.get(cfg.collection);
  out.search = (await replicate.models.search("hello")).results.map((m) => `${m.owner}/${m.name}`);
  out.modelsListed = (await replicate.models.list()).results.length;

  // Cancel of a slow prediction once it runs.
  let slow = await replicate.predictions.create({
    version: cfg.versions.slow,
    input: { steps: 60, step_seconds: 0.5 },
  });
  while (slow.status === "starting") {
    await new Promise((r) => setTimeout(r, 100));
    slow = await replicate.predictions.get(slow.id);
  }
  await replicate.predictions.cancel(slow.id);
  slow = await replicate.wait(slow, { interval: 100 });
  out.canceled = slow.status;

  // Prefer: wait=1 ends with "starting", then run() polls to completion.
  out.waitTimeout = await replicate.run(`${o}/slow-progress:${cfg.versions.slow}`, {
    input: { steps: 4, step_seconds: 0.5 },
    wait: { mode: "block", timeout: 1, interval: 100 },
  });

  // A webhook delivered to a receiver here, checked with the client's own validator.
  const received = new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        res.end("ok");
        const parsed = JSON.parse(body);
        if (parsed.status === "succeeded") {
          server.close();
          resolve({ headers: req.headers, body });
        }
      });
    });
    server.listen(0, "127.0.0.1", () => {
      out.webhookPort = server.address().port;
    });
  });
  while (!out.webhookPort) await new Promise((r) => setTimeout(r, 10));
  const secret = (await replicate.webhooks.default.secret.get()).key;
  await replicate.predictions.create({
    version: cfg.versions.hello,
    input: { text: "hook" },
    webhook: `http://127.0.0.1:${out.webhookPort}/hook?customId=7`,
    webhook_events_filter: ["completed"],
  });
  const hook = await received;
  // Node 18 (Debian's) has no global crypto: the client's documented way is to pass it in.
  out.webhookValid = await validateWebhook(
    { headers: hook.headers, body: hook.body },
    secret,
    webcrypto,
  );
  out.webhookTampered = await validateWebhook(
    { headers: hook.headers, body: hook.body.replace("hook", "hack") },
    secret,
    webcrypto,
  );
  out.webhookOutput = JSON.parse(hook.body).output;
}

main()
  .then(() => {
    process.stdout.write(JSON.stringify(out));
  })
  .catch((err) => {
    out.error = String(err && err.stack ? err.stack : err);
    process.stdout.write(JSON.stringify(out));
    process.exitCode = 1;
  });
