import { Errors } from "moleculer";
import { loadConfig } from "../../config";
import { createLimiterFactory } from "../../lib/rate-limits";
import { boundForEcho, ECHO_LIMITS, toErrorBody } from "../../services/api/errors";
import { buildOpenApi, paramsToJsonSchema } from "../../services/api/openapi";
import { RateLimits } from "../../services/api/rate-limit";
import { collectRoutes } from "../../services/api/routes";
import { createDomainSchemas } from "../../services";

describe("route table", () => {
	const routes = collectRoutes(Object.values(createDomainSchemas(loadConfig({}), { dataDir: null })) as any);

	it("contains every auth route of API.md with its access rule", () => {
		const table = Object.fromEntries(routes.map(r => [`${r.method} ${r.path}`, r.auth]));
		expect(table).toMatchObject({
			"POST /auth/register": "public",
			"POST /auth/login": "public",
			"POST /auth/refresh": "public",
			"POST /auth/logout": "signedIn",
			"GET /me": "signedIn",
			"POST /admin/users": ["admin"],
		});
	});

	it("refuses two actions on one route", () => {
		const a = { name: "a", settings: { rest: "" }, actions: { x: { rest: "GET /same", handler() {} } } };
		const b = { name: "b", settings: { rest: "" }, actions: { y: { rest: "GET /same", handler() {} } } };
		expect(() => collectRoutes([a, b] as any)).toThrow(/declared by both a.x and b.y/);
	});

	it("generates OpenAPI from params: required fields, strictness, security", () => {
		const doc = buildOpenApi(routes, { prefix: "/api/v1", title: "t", version: "1" }) as any;
		const register = doc.paths["/api/v1/auth/register"].post;
		const schema = register.requestBody.content["application/json"].schema;
		expect(schema.required).toEqual(["phone", "password"]);
		expect(schema.additionalProperties).toBe(false);
		expect(register.security).toBeUndefined();
		expect(Object.keys(register.responses)).toEqual(expect.arrayContaining(["201", "422", "429"]));
		expect(doc.paths["/api/v1/me"].get.security).toEqual([{ bearerAuth: [] }]);
		expect(doc.paths["/api/v1/admin/users"].post.requestBody.content["application/json"].schema.properties.roles).toMatchObject({
			type: "array", items: { enum: ["user", "merchant", "operator", "admin"] }, minItems: 1,
		});
	});

	it("expands fastest-validator shorthand", () => {
		expect(paramsToJsonSchema({ n: "number|integer|min:1", s: "string|optional" })).toEqual({
			type: "object", additionalProperties: false, required: ["n"],
			properties: { n: { type: "integer", minimum: 1 }, s: { type: "string" } },
		});
	});
});

describe("error shape", () => {
	it("keeps client errors as they are", () => {
		const e = new Errors.MoleculerClientError("No M door free", 409, "NO_DOOR_AVAILABLE", { size: "M" });
		expect(toErrorBody(e)).toEqual({ name: "MoleculerClientError", message: "No M door free", code: 409, type: "NO_DOOR_AVAILABLE", data: { size: "M" } });
	});

	it.each(["SERVICE_NOT_FOUND", "SERVICE_NOT_AVAILABLE", "REQUEST_TIMEOUT"])("turns mesh trouble %s into 503 SERVICE_UNAVAILABLE", type => {
		expect(toErrorBody({ name: "X", message: "m", code: 404, type }, "req-1")).toMatchObject({ code: 503, type: "SERVICE_UNAVAILABLE", data: { reason: type, requestId: "req-1" } });
	});

	it("hides the internals of unexpected errors", () => {
		const body = toErrorBody(new TypeError("cannot read x of undefined"), "req-2");
		expect(body).toEqual({ name: "MoleculerServerError", message: "Internal error", code: 500, type: "INTERNAL_ERROR", data: { requestId: "req-2" } });
	});

	it("bounds what an error echoes: long strings cut, deep and wide values trimmed", () => {
		let deep: unknown = 1;
		for (let i = 0; i < 5000; i++) deep = { a: deep };
		const entries = Array.from({ length: 50 }, (_, i) => ({ type: "string", field: `f${i}`, message: "x".repeat(10_000), actual: deep }));
		const body = toErrorBody({ name: "ValidationError", type: "VALIDATION_ERROR", code: 422, message: "bad", data: entries });
		const text = JSON.stringify(body);
		expect(text.length).toBeLessThan(8000);
		expect((body.data as unknown[]).length).toBe(ECHO_LIMITS.fieldErrors);
		expect(boundForEcho("y".repeat(500))).toBe(`${"y".repeat(ECHO_LIMITS.string)}…`);
		expect(boundForEcho(Array.from({ length: 30 }, (_, i) => i))).toHaveLength(ECHO_LIMITS.entries + 1);
		const domain = toErrorBody({ name: "MoleculerClientError", type: "NOT_FOUND", code: 404, message: "m", data: { id: "z".repeat(100_000) } });
		expect(JSON.stringify(domain).length).toBeLessThan(400);
	});
});

describe("rate limits", () => {
	beforeEach(() => jest.useFakeTimers({ now: 0 }));
	afterEach(() => jest.useRealTimers());

	it("allows `limit` requests per window and budget, then refuses until the window resets", async () => {
		const limits = new RateLimits(createLimiterFactory({ namespace: "t" }, "test"), { ipPerWindow: 3, userPerWindow: 1, authPerWindow: 1, windowMs: 60_000 });
		for (let i = 0; i < 3; i++) expect((await limits.take("ip", "a")).allowed).toBe(true);
		expect(await limits.take("ip", "a")).toEqual({ allowed: false, limit: 3, remaining: 0, resetSec: 60 });
		expect((await limits.take("ip", "b")).allowed).toBe(true);
		expect((await limits.take("user", "a")).allowed).toBe(true);
		jest.advanceTimersByTime(60_000);
		expect(await limits.take("ip", "a")).toMatchObject({ allowed: true, remaining: 2 });
	});
});
