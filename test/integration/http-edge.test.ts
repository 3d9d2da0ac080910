/**
 * The HTTP edge under hostile input. Every public route of the OpenAPI
 * document (read at run time, so a new route is covered without editing this
 * file) gets the families an outside probe and careless clients send: deep
 * nesting, huge numbers of keys, long strings, huge numbers, invalid UTF-8,
 * duplicate and prototype keys, wrong content types and encodings, bodies
 * over the limit, hostile query strings and path segments. Each answer must
 * be a 4xx in API.md's shape with a bounded body, nothing may be stored, and
 * the process must still answer afterwards.
 */
import zlib from "node:zlib";
import { ADMIN, newPhone, startTestPlatform, until, type TestPlatform } from "../support/platform";
import { registerCabinet } from "../support/catalog";

jest.setTimeout(120_000);

interface Probe {
	family: string;
	method: string;
	path: string;
	headers?: Record<string, string>;
	body?: Buffer | string;
	token?: string;
}

interface Operation {
	method: string;
	/** With `{param}` placeholders, as OpenAPI writes it. */
	path: string;
	pathParams: string[];
	queryParams: string[];
	bodyParams: string[];
	access: unknown;
}

let p: TestPlatform;
let operations: Operation[];
const tokens: Record<"user" | "admin", string> = { user: "", admin: "" };

/** Documents in every collection of every local service that has repositories. */
async function storedCounts(): Promise<Record<string, number>> {
	const out: Record<string, number> = {};
	for (const svc of p.node.broker.services as unknown as { name: string; repos?: Record<string, { count(q: object): Promise<number> }> }[]) {
		for (const [name, repo] of Object.entries(svc.repos ?? {})) out[`${svc.name}.${name}`] = await repo.count({});
	}
	return out;
}

function readOperations(doc: any): Operation[] {
	const ops: Operation[] = [];
	for (const [path, methods] of Object.entries<any>(doc.paths)) {
		for (const [method, op] of Object.entries<any>(methods)) {
			const params = (op.parameters ?? []) as { name: string; in: string }[];
			const body = op.requestBody?.content?.["application/json"]?.schema;
			ops.push({
				method: method.toUpperCase(),
				path,
				pathParams: params.filter(x => x.in === "path").map(x => x.name),
				queryParams: params.filter(x => x.in === "query").map(x => x.name),
				bodyParams: Object.keys(body?.properties ?? {}),
				access: op["x-access"],
			});
		}
	}
	return ops;
}

const fill = (op: Operation, value = "edge-probe-id") => op.path.replace(/\{[^}]+\}/g, encodeURIComponent(value));
const hasBody = (op: Operation) => op.method !== "GET" && op.method !== "DELETE";
const json = (o: unknown) => JSON.stringify(o);

/** A body nested `depth` levels, in a declared field when there is one. */
function deep(op: Operation, depth: number, open: string, close: string): string {
	const field = op.bodyParams[0] ?? "a";
	return `{"${field}":${open.repeat(depth)}1${close.repeat(depth)}}`;
}

function withEveryField(op: Operation, value: unknown): string {
	return json(Object.fromEntries(op.bodyParams.map(f => [f, value])));
}

/** Families that the body reader must refuse before anything else runs. */
function bodyProbes(op: Operation): Probe[] {
	const path = fill(op);
	const b = (family: string, body: Buffer | string, headers: Record<string, string> = { "content-type": "application/json" }): Probe => ({ family, method: op.method, path, body, headers });
	const field = op.bodyParams[0] ?? "a";
	const manyKeys = `{${Array.from({ length: 4000 }, (_, i) => `"k${i}":1`).join(",")}}`;
	return [
		b("deep objects (6000 levels, 36 KB)", deep(op, 6000, '{"a":', "}")),
		b("deep arrays (20000 levels)", deep(op, 20_000, "[", "]")),
		b("huge number of keys", manyKeys),
		b("huge array", `{"${field}":[${Array(15_000).fill(0).join(",")}]}`),
		b("__proto__ key", `{"${field}":"x","__proto__":{"roles":["admin"]}}`),
		b("constructor.prototype nested", `{"${field}":{"constructor":{"prototype":{"isAdmin":true}}}}`),
		b("escaped __proto__", `{"\\u005f_proto__":{"roles":["admin"]}}`),
		b("duplicate keys", `{"${field}":"a","${field}":"b"}`),
		b("invalid UTF-8", Buffer.concat([Buffer.from(`{"${field}":"`), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')])),
		b("malformed JSON", `{"${field}":`),
		b("not an object", "[1,2,3]"),
		b("a bare string", '"hello"'),
		b("null", "null"),
		b("over the body limit", `{"${field}":"${"x".repeat(70 * 1024)}"}`),
		b("text/plain", json({ [field]: "x" }), { "content-type": "text/plain" }),
		b("form encoded", `${field}=x`, { "content-type": "application/x-www-form-urlencoded" }),
		b("multipart", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--", { "content-type": "multipart/form-data; boundary=b" }),
		b("no content type", json({ [field]: "x" }), {}),
		b("latin1 charset", json({ [field]: "x" }), { "content-type": "application/json; charset=latin1" }),
		b("gzip claimed, plain sent", json({ [field]: "x" }), { "content-type": "application/json", "content-encoding": "gzip" }),
		b("br with junk", "\u0001\u0002junk", { "content-type": "application/json", "content-encoding": "br" }),
		b("unknown encoding", json({ [field]: "x" }), { "content-type": "application/json", "content-encoding": "compress" }),
		b("gzip bomb", zlib.gzipSync(`{"${field}":"${"x".repeat(2_000_000)}"}`), { "content-type": "application/json", "content-encoding": "gzip" }),
	];
}

/** Families that reach the params check: every declared field gets the hostile value. */
function valueProbes(op: Operation): Probe[] {
	const fields = hasBody(op) ? op.bodyParams : op.queryParams;
	if (!fields.length) return [];
	const values: [string, unknown][] = [
		["very long strings", "長".repeat(15_000)],
		["huge numbers", 1e308],
		["huge integers beyond 2^53", 123456789012345678901234567890],
		["NoSQL operators", { $gt: "", $ne: null }],
		["deep but allowed objects", JSON.parse(`${'{"a":'.repeat(14)}1${"}".repeat(14)}`)],
		["arrays of long strings", Array(200).fill("x".repeat(200))],
	];
	const out: Probe[] = [];
	for (const [family, value] of values) {
		for (const who of ["user", "admin"] as const) {
			if (hasBody(op)) {
				out.push({ family: `${family} (${who})`, method: op.method, path: fill(op), body: withEveryField(op, value), headers: { "content-type": "application/json" }, token: tokens[who] });
			} else {
				const text = typeof value === "string" ? value : json(value);
				const qs = fields.map(f => `${f}=${encodeURIComponent(text)}`).join("&");
				out.push({ family: `${family} in the query (${who})`, method: op.method, path: `${fill(op)}?${qs}`, token: tokens[who] });
			}
		}
	}
	if (!hasBody(op)) {
		const q = (family: string, qs: string) => out.push({ family, method: op.method, path: `${fill(op)}?${qs}`, token: tokens.admin });
		q("empty numbers", fields.map(f => `${f}=`).join("&"));
		q("hex numbers", fields.map(f => `${f}=0x1F`).join("&"));
		q("arrays in the query", fields.map(f => `${f}[]=1&${f}[]=2`).join("&"));
		q("objects in the query", fields.map(f => `${f}[$gt]=`).join("&"));
		q("deep query", `${fields[0]}${"[a]".repeat(50)}=1`);
		q("prototype in the query", `__proto__[roles]=admin&constructor[prototype][x]=1&${fields.map(f => `${f}=0x1F`).join("&")}`);
	}
	return out;
}

function pathProbes(op: Operation): Probe[] {
	if (!op.pathParams.length) return [];
	const seg = (family: string, raw: string): Probe => ({ family, method: op.method, path: op.path.replace(/\{[^}]+\}/g, raw), token: tokens.admin, ...(hasBody(op) ? { body: "{}", headers: { "content-type": "application/json" } } : {}) });
	return [
		seg("very long path segment", "a".repeat(4000)),
		seg("invalid percent-encoding", "%E0%A4%A"),
		seg("percent-encoded invalid UTF-8", "%ff%fe"),
		seg("NUL byte", "abc%00def"),
		seg("encoded traversal", "..%2f..%2fadmin"),
		seg("operator-looking id", encodeURIComponent('{"$gt":""}')),
	];
}

async function send(pr: Probe) {
	const headers: Record<string, string> = { ...(pr.headers ?? {}) };
	if (pr.token) headers.authorization = `Bearer ${pr.token}`;
	const res = await fetch(p.url + pr.path, { method: pr.method, headers, body: pr.body });
	const text = await res.text();
	return { status: res.status, text };
}

/** One line per answer that breaks the rules; empty when all are fine. */
async function violations(probes: Probe[]): Promise<string[]> {
	const bad: string[] = [];
	for (let i = 0; i < probes.length; i += 16) {
		const batch = probes.slice(i, i + 16);
		const answers = await Promise.all(batch.map(send));
		answers.forEach((a, j) => {
			const pr = batch[j];
			const where = `${pr.method} ${pr.path.slice(0, 80)} [${pr.family}]`;
			if (a.status < 400 || a.status > 499) return bad.push(`${where}: status ${a.status} ${a.text.slice(0, 200)}`);
			if (a.text.length > 4096) return bad.push(`${where}: ${a.text.length}-byte error body`);
			let body: any;
			try {
				body = JSON.parse(a.text);
			} catch {
				return bad.push(`${where}: not JSON: ${a.text.slice(0, 100)}`);
			}
			if (!(typeof body.name === "string" && typeof body.message === "string" && body.code === a.status && typeof body.type === "string")) {
				bad.push(`${where}: not API.md's error shape: ${a.text.slice(0, 200)}`);
			}
		});
	}
	return bad;
}

beforeAll(async () => {
	p = await startTestPlatform({ RATE_LIMIT_IP: "100000000", RATE_LIMIT_USER: "100000000", RATE_LIMIT_AUTH: "100000000", LOGIN_LOCK_AFTER: "1000", LOGIN_SLOW_AFTER: "1000" });
	tokens.user = (await p.api("POST", "/api/v1/auth/register", { phone: newPhone(), password: "edge-user-pass-1" })).body.accessToken;
	tokens.admin = (await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).body.accessToken;
	operations = readOperations((await p.api("GET", "/api/openapi.json")).body);
	// The alerts service takes its dispatcher lease (a document beside the robots) on its first tick:
	// a write of its own, not one a probe caused, so it must be there before the counts are taken.
	const alerts = p.node.broker.getLocalService("alerts") as unknown as { repos: { robots: { count(q: object): Promise<number> } } };
	await until("the alerts dispatcher's lease", async () => (await alerts.repos.robots.count({ _id: "$dispatcher" })) > 0);
});
afterAll(() => p.stop());

describe("every public route under hostile input", () => {
	it("reads the routes from the OpenAPI document", () => {
		expect(operations.length).toBeGreaterThan(15);
		expect(operations.map(o => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(["POST /api/v1/auth/login", "GET /api/v1/points/nearby"]));
	});

	const families: [string, (op: Operation) => Probe[]][] = [
		["hostile bodies", op => (hasBody(op) ? bodyProbes(op) : [])],
		["hostile values", valueProbes],
		["hostile path segments", pathProbes],
	];
	for (const [name, probesOf] of families) {
		it(`${name}: a bounded 4xx in API.md's shape, nothing stored, the process still answers`, async () => {
			const before = await storedCounts();
			const probes = operations.flatMap(probesOf);
			expect(probes.length).toBeGreaterThan(0);
			expect(await violations(probes)).toEqual([]);
			expect(await storedCounts()).toEqual(before);
			expect((await p.api("GET", "/api/v1/health")).status).toBe(200);
			expect((await p.api("POST", "/api/v1/auth/login", { login: ADMIN.username, password: ADMIN.password })).status).toBe(200);
		});
	}

	it("the two bodies of the probe report: 36 KB of nesting and a __proto__ key", async () => {
		let inner = "1";
		for (let i = 0; i < 6000; i++) inner = `{"a":${inner}}`;
		for (const route of ["/api/v1/auth/login", "/api/v1/auth/register"]) {
			const r = await p.api("POST", route, undefined, { raw: `{"login":${inner},"password":"x"}` });
			expect(r).toMatchObject({ status: 400, body: { type: "INVALID_REQUEST_BODY" } });
		}
		const proto = await p.api("POST", "/api/v1/auth/register", undefined, { raw: `{"phone":"${newPhone()}","password":"edge-proto-pass-1","__proto__":{"roles":["admin"]}}` });
		expect(proto).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR", data: [{ field: "__proto__" }] } });
	});

	it("refuses lat= and lat=0x1F instead of reading 0 and 31", async () => {
		for (const q of ["lat=&lng=", "lat=0x1F&lng=121.47", "lat=31.2&lng=0b11"]) {
			expect(await p.api("GET", `/api/v1/points/nearby?${q}`)).toMatchObject({ status: 422, body: { type: "VALIDATION_ERROR" } });
		}
		expect((await p.api("GET", "/api/v1/points/nearby?lat=31.2304&lng=121.4737")).status).toBe(200);
	});

	it("keeps a client's request id only when it is short and plain", async () => {
		const long = await p.api("GET", "/api/v1/health", undefined, { headers: { "x-request-id": "r".repeat(5000) } });
		expect((long.headers.get("x-request-id") ?? "").length).toBeLessThanOrEqual(64);
		const ok = await p.api("GET", "/api/v1/health", undefined, { headers: { "x-request-id": "abc-123" } });
		expect(ok.headers.get("x-request-id")).toBe("abc-123");
	});
});

describe("what the gateway logs", () => {
	it("a routine 503 about one cabinet is one WARN line, no ERROR and no stack", async () => {
		const cab = await registerCabinet(p.node.broker, [{ no: 1, size: "M" }]);
		const logger = (p.node.broker.getLocalService("api") as unknown as { logger: Record<string, (...a: unknown[]) => void> }).logger;
		const error = jest.spyOn(logger, "error");
		const warn = jest.spyOn(logger, "warn");
		try {
			const r = await p.api("POST", `/api/v1/doors/${encodeURIComponent(`${cab.cabinetId}:01`)}/open`, { reason: "edge test" }, { token: tokens.admin });
			expect(r).toMatchObject({ status: 503, body: { type: "CABINET_OFFLINE" } });
			expect(error).not.toHaveBeenCalled();
			expect(warn).toHaveBeenCalledTimes(1);
			expect(warn.mock.calls[0]).toHaveLength(1);
			expect(String(warn.mock.calls[0][0])).toContain("CABINET_OFFLINE");
		} finally {
			error.mockRestore();
			warn.mockRestore();
		}
	});
});
