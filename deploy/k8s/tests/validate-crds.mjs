// Validates custom resources against their CRDs' schemas: reads a JSON array of objects on
// stdin, prints a JSON array of {kind, name, error} (error null when valid). The schemas are
// the operators' own, compiled by kubernetes-models-ts into the npm packages that package.json
// pins (versions and sources: ../README.md, "Tests"). Objects of an API group not listed here
// are reported as errors: every custom resource the manifests use must be checked.
// Usage: CRD_SCHEMAS_NODE_MODULES=.../node_modules node validate-crds.mjs < objects.json
import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg",
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};
const modules = process.env.CRD_SCHEMAS_NODE_MODULES;

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const pkg = PACKAGES[group];
  if (!pkg) throw new Error(`no schema for the API group ${group}`);
  const file = path.join(modules, pkg, group, version, `${kind}.js`);
  if (!existsSync(file)) throw new Error(`no schema for ${apiVersion} ${kind} in ${pkg}`);
  const module = await import(pathToFileURL(file).href);
  return module[kind];
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = [];
for (const object of objects) {
  const result = { kind: object.kind, name: object.metadata?.name ?? null, error: null };
  try {
    const Model = await modelFor(object.apiVersion, object.kind);
    new Model(object).validate();
  } catch (error) {
    result.error = String(error.message ?? error);
  }
  results.push(result);
}
process.stdout.write(JSON.stringify(results));
