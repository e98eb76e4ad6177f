// Trainings through the official Replicate JS client (pinned in package.json) against a live
// marketplace. Config comes as JSON in MK_CONFIG; the result is one JSON object on stdout that the
// Python test asserts on.
import Replicate from "replicate";

const cfg = JSON.parse(process.env.MK_CONFIG);
const replicate = new Replicate({ auth: cfg.token, baseUrl: `${cfg.baseUrl}/v1` });
const out = {};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(id, statuses) {
  for (;;) {
    const training = await replicate.trainings.get(id);
    if (statuses.includes(training.status)) return training;
    await sleep(100);
  }
}

async function main() {
  const created = await replicate.trainings.create("alice", "trainable", cfg.version, {
    destination: "alice/trained-js",
    input: { phrase: "hola" },
  });
  out.created = { id: created.id, status: created.status };
  // replicate.wait polls /v1/predictions/{id}, which answers for trainings too.
  const finished = await replicate.wait(created, { interval: 100 });
  out.finished = { id: finished.id, status: finished.status, output: finished.output };
  out.ran = await replicate.run(finished.output.version, { input: { name: "js" } });
  out.base = await replicate.run(`alice/trainable:${cfg.version}`, { input: { name: "js" } });
  out.got = (await replicate.trainings.get(created.id)).id;
  const page = await replicate.trainings.list();
  out.listed = page.results.length;

  const slow = await replicate.trainings.create("alice", "trainable", cfg.version, {
    destination: "alice/trained-js",
    input: { phrase: "slow", seconds: 60 },
  });
  await until(slow.id, ["processing"]);
  await replicate.trainings.cancel(slow.id);
  out.canceled = (await until(slow.id, ["canceled", "succeeded", "failed"])).status;
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
