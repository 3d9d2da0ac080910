import { loadConfig } from "../../config";
import { createDomainSchemas } from "../../services";
import { buildOpenApi } from "../../services/api/openapi";
import { RESPONSES, missingResponses } from "../../services/api/responses";
import { collectRoutes, type RouteDef } from "../../services/api/routes";

/** Written from CONTRACTS.md ahead of the branches that add these routes. */
const AHEAD_OF_ROUTES = new Set(["merchants.listPointCabinets", "merchants.listCabinets", "merchants.getDoor"]);

describe("OpenAPI success responses", () => {
	const routes = collectRoutes(Object.values(createDomainSchemas(loadConfig({}), { dataDir: null })) as any);
	const doc = buildOpenApi(routes, { prefix: "/api/v1", title: "t", version: "1" }) as any;

	it("every route has a response schema (a new route needs an entry in services/api/responses.ts)", () => {
		expect(missingResponses(routes)).toEqual([]);
	});

	it("every entry names a route (a renamed action leaves no stale entry)", () => {
		const actions = new Set(routes.map(r => r.action));
		expect(Object.keys(RESPONSES).filter(a => !actions.has(a) && !AHEAD_OF_ROUTES.has(a))).toEqual([]);
	});

	it("every success carries its schema and status, and every $ref resolves", () => {
		for (const [path, ops] of Object.entries<any>(doc.paths)) {
			for (const [method, op] of Object.entries<any>(ops)) {
				const spec = RESPONSES[op.operationId];
				const success = op.responses[String(spec.status)];
				expect({ route: `${method} ${path}`, has: success !== undefined }).toEqual({ route: `${method} ${path}`, has: true });
				if (spec.status !== 204) expect(success.content["application/json"].schema).toEqual(spec.schema);
			}
		}
		const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(m => m[1]);
		expect(refs.length).toBeGreaterThan(0);
		expect(refs.filter(name => !doc.components.schemas[name])).toEqual([]);
	});

	it("answers 201 where the handler does (refund, silences), 204 for logout", () => {
		expect(Object.keys(doc.paths["/api/v1/orders/{id}/refund"].post.responses)).toContain("201");
		expect(Object.keys(doc.paths["/api/v1/alerts/silences"].post.responses)).toContain("201");
		expect(doc.paths["/api/v1/auth/logout"].post.responses["204"]).toEqual({ description: "Session revoked" });
	});

	it("a route without an entry is a generic object, flagged and listed", () => {
		const extra: RouteDef = { method: "GET", path: "/nowhere", action: "nobody.knows", auth: "public", params: {}, service: "nobody" };
		expect(missingResponses([...routes, extra])).toEqual(["nobody.knows"]);
		const op = (buildOpenApi([extra], { prefix: "/api/v1", title: "t", version: "1" }) as any).paths["/api/v1/nowhere"].get;
		expect(op.responses["200"]).toMatchObject({ "x-response-undocumented": true, content: { "application/json": { schema: { type: "object" } } } });
	});
});
