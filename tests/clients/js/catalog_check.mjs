// The official JS client against a live marketplace: search, a model created with a cover
// image URL, and a deployment taken offline. Config in MK_CONFIG; one JSON object on stdout.
import Replicate from "replicate";

const cfg = JSON.parse(process.env.MK_CONFIG);
const replicate = new Replicate({ auth: cfg.token, baseUrl: `${cfg.baseUrl}/v1` });
const out = {};

async function main() {
  out.search = (await replicate.models.search(cfg.query)).results.map((m) => m.name);
  const created = await replicate.models.create(cfg.owner, "js-cover", {
    visibility: "public",
    hardware: "cpu",
    cover_image_url: cfg.coverUrl,
  });
  out.cover = created.cover_image_url;
  out.coverStatus = (await fetch(created.cover_image_url)).status;
  const updated = await replicate.deployments.update(cfg.owner, cfg.deployment, {
    max_instances: 0,
  });
  out.offline = updated.current_release.configuration;
  try {
    await replicate.deployments.predictions.create(cfg.owner, cfg.deployment, { input: {} });
    out.refused = null;
  } catch (err) {
    out.refused = err.response ? err.response.status : String(err);
  }
}

main()
  .then(() => process.stdout.write(JSON.stringify(out)))
  .catch((err) => {
    out.error = String(err && err.stack ? err.stack : err);
    process.stdout.write(JSON.stringify(out));
    process.exitCode = 1;
  });
