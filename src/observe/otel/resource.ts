// Who is reporting: the OTel Resource every signal carries (service.name=moat, its version,
// the host it runs on).
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

// host.name is still "incubating" in semantic-conventions; its value is fixed by the spec.
const ATTR_HOST_NAME = "host.name";

function packageVersion(): string {
  const text = readFileSync(new URL("../../../package.json", import.meta.url), "utf8");
  const version = (JSON.parse(text) as { version?: unknown }).version;
  return typeof version === "string" ? version : "unknown";
}

export function moatResource(): Resource {
  return resourceFromAttributes({
    [ATTR_SERVICE_NAME]: "moat",
    [ATTR_SERVICE_VERSION]: packageVersion(),
    [ATTR_HOST_NAME]: hostname(),
  });
}
