/**
 * .env.example documents every setting config/index.ts reads, and nothing it does not
 * (besides the variables docker-compose.yml itself needs), and docker-compose.yml hands
 * it to every node role: the three cannot drift apart.
 */
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../../config";

const root = path.join(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");

/** Read by docker-compose.yml, not by the platform. */
const COMPOSE_ONLY = ["API_PORT", "EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD"];

/** NAME=value lines, and commented `# NAME=` lines (set by compose per role), each with the comment above it. */
function documented(text: string): Map<string, string> {
	const out = new Map<string, string>();
	let comment: string[] = [];
	for (const line of text.split("\n")) {
		const m = /^(#\s*)?([A-Z][A-Z0-9_]*)=/.exec(line);
		if (m) {
			out.set(m[2], comment.join(" "));
			continue;
		}
		if (/^#/.test(line)) comment.push(line.replace(/^#\s?/, ""));
		else comment = [];
	}
	return out;
}

/** Every variable config/index.ts reads: by its helpers in the source, and as loadConfig asks an env that records reads. */
function settingsRead(): Set<string> {
	const names = new Set<string>();
	for (const m of read("config/index.ts").matchAll(/\b(?:str|int|bool|url|byteSize)\("([A-Z][A-Z0-9_]*)"/g)) names.add(m[1]);
	const env = new Proxy({} as Record<string, string | undefined>, { get: (_t, key) => (typeof key === "string" && /^[A-Z]/.test(key) && names.add(key), undefined) });
	loadConfig(env);
	return names;
}

describe(".env.example", () => {
	const docs = documented(read(".env.example"));
	const settings = settingsRead();

	it("finds the settings config/index.ts reads", () => {
		expect(settings.size).toBeGreaterThan(70);
		expect([...settings]).toEqual(expect.arrayContaining(["JWT_SECRET", "DOOR_LEASE_TTL_MS", "EMQX_API_KEY", "HEALTH_PORT", "NAMESPACE"]));
	});

	it("documents every one of them, each with a comment", () => {
		expect([...settings].filter(name => !docs.has(name))).toEqual([]);
		// A name may share the comment above a group (e.g. DINGTALK_RATE_PER_WINDOW and _WINDOW_MS).
		expect([...docs].filter(([, comment]) => comment.trim() === "").map(([name]) => name)).toEqual([]);
	});

	it("documents nothing the platform does not read, besides compose's own variables", () => {
		expect([...docs.keys()].filter(name => !settings.has(name) && !COMPOSE_ONLY.includes(name))).toEqual([]);
	});

	it("marks every secret, and leaves every secret empty", () => {
		const text = read(".env.example");
		for (const name of ["JWT_SECRET", "ADMIN_PASSWORD", "SANDBOX_PAY_SECRET", "CABINET_SECRET_KEY", "MQTT_PASSWORD", "MQTT_HOOK_SECRET", "METRICS_TOKEN", "EMQX_API_SECRET", "DINGTALK_SECRET", "EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD"]) {
			expect({ name, secret: /SECRET/.test(docs.get(name)!) }).toEqual({ name, secret: true });
			expect(text).toMatch(new RegExp(`^${name}=$`, "m"));
		}
	});
});

describe("docker-compose.yml", () => {
	const compose = read("docker-compose.yml");
	const docs = documented(read(".env.example"));

	it("documents in .env.example every variable it interpolates", () => {
		const used = new Set([...compose.matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map(m => m[1]));
		expect(used.size).toBeGreaterThan(5);
		expect([...used].filter(name => !docs.has(name))).toEqual([]);
		for (const name of COMPOSE_ONLY) expect(used).toContain(name);
	});

	it("hands .env to the node roles, which share one anchor, each with a health check", () => {
		const anchor = compose.slice(compose.indexOf("x-node: &node"), compose.indexOf("\nservices:"));
		expect(anchor).toMatch(/^  env_file: \.env$/m);
		expect(anchor).toMatch(/healthcheck:\s+test: \["CMD", "node", "deploy\/healthcheck.js"\]/);
		for (const role of ["api", "core", "doors", "hardware"]) expect(compose).toMatch(new RegExp(`\\n  ${role}:\\n(?:    #.*\\n)*    <<: \\*node\\n`));
	});
});
