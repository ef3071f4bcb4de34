// Validates the CloudNativePG resources of the given manifests (make
// validate-deploy) against the operator API's JSON schemas: types, enums,
// required fields. kubernetes-validate checks the built-in kinds; it has no
// schema for these and would only warn.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";
import { Database } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Database";

const API_VERSION = "postgresql.cnpg.io/v1";
const MODELS = { Cluster, Database };

let invalid = 0;
for (const path of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(path, "utf8"))) {
    const resource = document.toJS();
    if (resource?.apiVersion !== API_VERSION) continue;
    const where = `${path}: ${resource.kind} ${resource.metadata?.name}`;
    const Model = MODELS[resource.kind];
    try {
      if (!Model) throw new Error(`no schema here for the kind ${resource.kind}`);
      new Model(resource).validate();
    } catch (error) {
      console.error(`${where}: ${error.message}`);
      invalid += 1;
    }
  }
}
process.exit(invalid ? 1 : 0);
